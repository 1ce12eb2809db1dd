"""Canonical JSON, checksum and variable-name helpers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvc.registry import rendering
from pvc.registry.content import (
    PLACEHOLDER_RE,
    canonical_json,
    compute_checksum,
    declared_defaults,
    declared_variable_names,
    template_variables,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


# -- canonical_json ---------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == (
        '{"a":[1,2,{"c":true,"d":null}],"b":1}'
    )


def test_canonical_json_keeps_unicode_as_is() -> None:
    assert canonical_json({"k": "héllo ✓ 日本"}) == '{"k":"héllo ✓ 日本"}'


def test_canonical_json_keeps_number_spelling() -> None:
    assert canonical_json([1, 1.0, True]) == "[1,1.0,true]"


@given(json_values)
def test_canonical_json_round_trips_and_is_stable(value: Any) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert canonical_json(json.loads(text)) == text


# -- compute_checksum --------------------------------------------------------------------------------


def test_checksum_known_vector() -> None:
    # Pinned: the same bytes as `printf '%s' '<canonical json>' | sha256sum`.
    checksum = compute_checksum(
        template="Hello {{name}}", variables=["name"], config={"temperature": 0.2, "model": "gpt-4o"}
    )
    assert checksum == "bbf977bb4beb3b0244184def4860fd23fbf7751c18594eda05f179159afadf60"


def test_checksum_of_empty_content() -> None:
    expected = hashlib.sha256(b'{"config":{},"template":"","variables":[]}').hexdigest()
    assert compute_checksum(template="", variables=[], config={}) == expected


def test_checksum_ignores_config_key_order() -> None:
    first = compute_checksum(template="t", variables=[], config={"a": 1, "b": {"y": 2, "x": 1}})
    second = compute_checksum(template="t", variables=[], config={"b": {"x": 1, "y": 2}, "a": 1})
    assert first == second


@pytest.mark.parametrize(
    ("template", "variables", "config"),
    [
        ("t ", [], {}),
        ("t", ["x"], {}),
        ("t", [], {"temperature": 1}),
        ("t", [], {"temperature": 1.0}),
        ("T", [], {}),
    ],
)
def test_checksum_changes_with_any_field(template: str, variables: list[Any], config: dict[str, Any]) -> None:
    base = compute_checksum(template="t", variables=[], config={})
    assert compute_checksum(template=template, variables=variables, config=config) != base


def test_checksum_hashes_utf8_bytes() -> None:
    expected = hashlib.sha256('{"config":{},"template":"café ☕","variables":[]}'.encode()).hexdigest()
    assert compute_checksum(template="café ☕", variables=[], config={}) == expected


def test_checksum_is_lowercase_hex() -> None:
    checksum = compute_checksum(template="x", variables=[], config={})
    assert len(checksum) == 64
    assert set(checksum) <= set("0123456789abcdef")


# -- template_variables ------------------------------------------------------------------------------


def test_template_variables_in_order_of_first_appearance_without_duplicates() -> None:
    template = "{{b}} and {{a}} then {{b}} again, {{ c }}, {{a}}"
    assert template_variables(template) == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{name}}", ["name"]),
        ("{{ name }}", ["name"]),
        ("{{\tname\t}}", ["name"]),
        ("{{   spaced   }}", ["spaced"]),
        ("{{_private}}", ["_private"]),
        ("{{user.first-name_2}}", ["user.first-name_2"]),
        ("{{{name}}}", ["name"]),
        ("", []),
        ("no placeholders here", []),
        ("{name} {{ }} {{}} {{1abc}} {{a b}} {{-x}} {{ .x }}", []),
        ("{{\nname\n}}", []),  # a placeholder never spans lines
        ("{{ name }", []),
        ("{{na me}}", []),
        ("{{ä}}", []),  # names are ASCII identifiers
        ("héllo {{wörld}} {{world}}", ["world"]),
    ],
)
def test_template_variables_syntax(template: str, expected: list[str]) -> None:
    assert template_variables(template) == expected


def test_placeholder_regex_is_shared_with_the_renderer() -> None:
    assert vars(rendering)["PLACEHOLDER_RE"] is PLACEHOLDER_RE


@given(st.text(alphabet="{} abx_.-1\n\t"))
def test_template_variables_are_unique_and_match_the_regex(template: str) -> None:
    names = template_variables(template)
    assert len(names) == len(set(names))
    assert names == list(dict.fromkeys(m.group(1) for m in PLACEHOLDER_RE.finditer(template)))


# -- declared variables ------------------------------------------------------------------------------


def test_declared_names_from_strings_and_objects_in_order() -> None:
    variables: list[Any] = [
        "a",
        {"name": "b", "description": "the b", "default": "x", "required": False},
        {"name": "c"},
        "d",
    ]
    assert declared_variable_names(variables) == ["a", "b", "c", "d"]


def test_declared_names_empty() -> None:
    assert declared_variable_names([]) == []


def test_declared_names_skip_items_without_a_name() -> None:
    variables: list[Any] = [{"description": "no name"}, {"name": 3}, 42, None, ["x"], "ok"]
    assert declared_variable_names(variables) == ["ok"]


def test_declared_defaults_only_for_objects_with_a_default_key() -> None:
    variables: list[Any] = [
        "plain",
        {"name": "tone", "default": "formal"},
        {"name": "limit", "default": 3},
        {"name": "nullable", "default": None},
        {"name": "required", "required": True},
        {"name": "tone", "default": "second declaration loses"},
        {"default": "nameless"},
    ]
    assert declared_defaults(variables) == {"tone": "formal", "limit": 3, "nullable": None}
