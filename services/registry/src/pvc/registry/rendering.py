"""Render a ``{{name}}`` template by plain substitution: nothing is evaluated or executed.

Substitution is a single regex pass (``re.sub`` with a function), so text inserted from a value is never
scanned again: a value containing ``{{other}}`` stays literal, which keeps callers' data from injecting
placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pvc.registry.content import PLACEHOLDER_RE, canonical_json

__all__ = ["RenderResult", "format_value", "render_template"]


@dataclass(frozen=True, slots=True)
class RenderResult:
    """Outcome of a render; the route maps it to ``{rendered, variablesUsed, missingVariables}``."""

    rendered: str
    variables_used: list[str]
    missing_variables: list[str]


def format_value(value: object) -> str:
    """Text inserted for a value: strings as-is, None empty, JSON spelling for bools and containers."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # bool before int: bool is a subclass of int and must read "true", not "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple | dict):
        return canonical_json(value)
    return str(value)


def render_template(
    *,
    template: str,
    values: Mapping[str, object],
    defaults: Mapping[str, object] | None = None,
) -> RenderResult:
    """Substitute placeholders from ``values``, then ``defaults``; leave unknown ones literally in place.

    A placeholder with neither a value nor a default is kept as written (``{{ name }}`` included) so the
    caller can see what is missing; its name is reported in ``missing_variables``.
    """
    fallback: Mapping[str, object] = defaults if defaults is not None else {}
    used: dict[str, None] = {}
    missing: dict[str, None] = {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            value = values[name]
        elif name in fallback:
            value = fallback[name]
        else:
            missing[name] = None
            return match.group(0)
        used[name] = None
        return format_value(value)

    rendered = PLACEHOLDER_RE.sub(substitute, template)
    return RenderResult(rendered=rendered, variables_used=list(used), missing_variables=list(missing))
