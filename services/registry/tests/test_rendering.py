"""Template rendering: plain substitution, single pass, nothing evaluated."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvc.registry.content import template_variables
from pvc.registry.rendering import RenderResult, format_value, render_template


def test_substitutes_values() -> None:
    result = render_template(
        template="Hello {{name}}, welcome to {{ place }}!", values={"name": "Ada", "place": "pvc"}
    )
    assert result == RenderResult(
        rendered="Hello Ada, welcome to pvc!", variables_used=["name", "place"], missing_variables=[]
    )


def test_repeated_placeholder_is_substituted_everywhere_and_listed_once() -> None:
    result = render_template(template="{{x}}-{{ x }}-{{x}}", values={"x": "1"})
    assert result.rendered == "1-1-1"
    assert result.variables_used == ["x"]


def test_variables_used_in_order_of_first_appearance() -> None:
    result = render_template(template="{{b}} {{a}} {{b}} {{c}}", values={"a": 1, "b": 2, "c": 3, "unused": 4})
    assert result.variables_used == ["b", "a", "c"]


def test_unused_values_are_ignored() -> None:
    result = render_template(template="static", values={"x": "y"})
    assert result == RenderResult(rendered="static", variables_used=[], missing_variables=[])


def test_missing_placeholders_stay_literal_and_are_listed_once_in_order() -> None:
    result = render_template(template="{{ b }} {{a}} {{b}} {{known}} {{a}}", values={"known": "k"})
    assert result.rendered == "{{ b }} {{a}} {{b}} k {{a}}"
    assert result.missing_variables == ["b", "a"]
    assert result.variables_used == ["known"]


def test_defaults_fill_missing_values() -> None:
    result = render_template(template="{{tone}} {{name}}", values={"name": "Ada"}, defaults={"tone": "Dear"})
    assert result.rendered == "Dear Ada"
    assert result.variables_used == ["tone", "name"]
    assert result.missing_variables == []


def test_values_override_defaults() -> None:
    result = render_template(template="{{tone}}", values={"tone": "Hey"}, defaults={"tone": "Dear"})
    assert result.rendered == "Hey"


def test_null_default_renders_empty() -> None:
    result = render_template(template="[{{x}}]", values={}, defaults={"x": None})
    assert result.rendered == "[]"
    assert result.variables_used == ["x"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (1.5, "1.5"),
        (2.0, "2.0"),
        ([1, "a", None], '[1,"a",null]'),
        ({"b": 1, "a": ["é"]}, '{"a":["é"],"b":1}'),
        ([], "[]"),
        ({}, "{}"),
    ],
)
def test_value_formatting(value: object, text: str) -> None:
    assert format_value(value) == text
    assert render_template(template="<{{v}}>", values={"v": value}).rendered == f"<{text}>"


def test_value_containing_a_placeholder_is_not_re_expanded() -> None:
    result = render_template(template="{{a}} / {{b}}", values={"a": "{{b}}", "b": "{{a}}"})
    assert result.rendered == "{{b}} / {{a}}"
    assert result.variables_used == ["a", "b"]
    assert result.missing_variables == []


def test_value_containing_a_missing_placeholder_is_not_reported_missing() -> None:
    result = render_template(template="{{a}}", values={"a": "{{secret}}"})
    assert result.rendered == "{{secret}}"
    assert result.missing_variables == []


def test_injection_through_defaults_is_not_re_expanded() -> None:
    result = render_template(template="{{a}}", values={"x": "X"}, defaults={"a": "{{x}}"})
    assert result.rendered == "{{x}}"


@pytest.mark.parametrize("value", [r"\1", r"\g<0>", "\\", "$1", "${x}", "%s", "{0}", "{{", "}}"])
def test_regex_and_format_metacharacters_are_inserted_literally(value: str) -> None:
    assert render_template(template="[{{v}}]", values={"v": value}).rendered == f"[{value}]"


def test_nothing_is_evaluated() -> None:
    template = "{{__import__('os').system('true')}} {{ 1+1 }} {{x.__class__}} ${x} {% if x %}"
    result = render_template(template=template, values={"x": "v", "x.__class__": "dotted name, plain lookup"})
    assert (
        result.rendered
        == "{{__import__('os').system('true')}} {{ 1+1 }} dotted name, plain lookup ${x} {% if x %}"
    )
    assert result.variables_used == ["x.__class__"]


def test_empty_template() -> None:
    assert render_template(template="", values={"a": 1}) == RenderResult(
        rendered="", variables_used=[], missing_variables=[]
    )


def test_crlf_and_unicode_are_preserved() -> None:
    result = render_template(template="Bonjour {{nom}} ☕\r\nÀ bientôt\r\n", values={"nom": "Zoë 日本"})
    assert result.rendered == "Bonjour Zoë 日本 ☕\r\nÀ bientôt\r\n"


def test_placeholder_spanning_lines_is_not_a_placeholder() -> None:
    result = render_template(template="{{\nx\n}}", values={"x": "1"})
    assert result.rendered == "{{\nx\n}}"
    assert result.missing_variables == []


def test_triple_braces_keep_the_outer_brace() -> None:
    assert render_template(template="{{{x}}}", values={"x": "v"}).rendered == "{v}"


def test_result_is_frozen() -> None:
    result = render_template(template="x", values={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rendered = "y"  # type: ignore[misc]


# -- properties --------------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True)
brace_free_text = st.text(alphabet=st.characters(blacklist_characters="{}"))


@given(st.text().filter(lambda t: "{{" not in t), st.dictionaries(names, st.text()))
def test_template_without_placeholders_renders_unchanged(template: str, values: dict[str, str]) -> None:
    result = render_template(template=template, values=values)
    assert result == RenderResult(rendered=template, variables_used=[], missing_variables=[])


@given(st.lists(st.tuples(brace_free_text, names), max_size=6), brace_free_text)
def test_without_values_every_placeholder_is_missing_and_output_is_identity(
    parts: list[tuple[str, str]], tail: str
) -> None:
    template = "".join(f"{text}{{{{{name}}}}}" for text, name in parts) + tail
    result = render_template(template=template, values={})
    assert result.rendered == template
    assert result.missing_variables == template_variables(template)
    assert result.variables_used == []


@given(st.lists(st.tuples(brace_free_text, names), max_size=6), st.text())
def test_all_values_given_leaves_no_placeholder_of_the_template(
    parts: list[tuple[str, str]], value: str
) -> None:
    template = "".join(f"{text}{{{{ {name} }}}}" for text, name in parts)
    wanted = template_variables(template)
    result = render_template(template=template, values=dict.fromkeys(wanted, value))
    assert result.variables_used == wanted
    assert result.missing_variables == []
    expected = "".join(text + value for text, _ in parts)
    assert result.rendered == expected
