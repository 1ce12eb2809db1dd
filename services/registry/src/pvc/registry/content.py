"""Pure helpers over a version's content: canonical JSON, checksum and variable names.

The checksum decides whether a new version is a duplicate of the latest one, so its input must be
byte-for-byte stable: keys sorted, no insignificant whitespace, non-ASCII kept as UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PLACEHOLDER_RE",
    "canonical_json",
    "compute_checksum",
    "declared_defaults",
    "declared_variable_names",
    "template_variables",
]

#: A ``{{name}}`` placeholder; spaces or tabs are allowed inside the braces (``{{ name }}``).
#: Group 1 is the name. Shared by :func:`template_variables` and the renderer so both agree on
#: exactly what counts as a placeholder.
PLACEHOLDER_RE = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*\}\}")


def canonical_json(value: object) -> str:
    """Serialise ``value`` deterministically, so equal content always gives equal text (and checksum)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_checksum(*, template: str, variables: list[Any], config: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of ``{template, variables, config}`` (the version's identity)."""
    payload = canonical_json({"template": template, "variables": variables, "config": config})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def template_variables(template: str) -> list[str]:
    """Names of the template's placeholders, in order of first appearance, each once."""
    return list(dict.fromkeys(match.group(1) for match in PLACEHOLDER_RE.finditer(template)))


def _declared_name(item: object) -> str | None:
    """The name of one declared variable, or None for an item that has none (validated elsewhere)."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        name = item.get("name")
        if isinstance(name, str):
            return name
    return None


def declared_variable_names(variables: list[Any]) -> list[str]:
    """Names of the declared variables, in declaration order.

    Items are either plain names or objects ``{name, description?, default?, required?}``. Items
    without a string name are skipped rather than raising: input validation happens at the API edge,
    and a diff or render of already-stored content must not fail because of it.
    """
    names: list[str] = []
    for item in variables:
        name = _declared_name(item)
        if name is not None:
            names.append(name)
    return names


def declared_defaults(variables: list[Any]) -> dict[str, object]:
    """Defaults of the declared variables that have a ``default`` key, for :func:`render_template`.

    A ``default`` key that is present counts even when its value is null (it then renders as ``""``);
    the first declaration of a name wins.
    """
    defaults: dict[str, object] = {}
    for item in variables:
        if isinstance(item, Mapping) and "default" in item:
            name = _declared_name(item)
            if name is not None and name not in defaults:
                defaults[name] = item["default"]
    return defaults
