"""Version diff: line sections, stats, variable/config changes and the semantic-impact heuristics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvc.registry.diffing import DiffResult, DiffSection, VersionContent, diff_versions, split_lines


def diff(
    old: str,
    new: str,
    *,
    old_variables: list[Any] | None = None,
    new_variables: list[Any] | None = None,
    old_config: dict[str, Any] | None = None,
    new_config: dict[str, Any] | None = None,
) -> DiffResult:
    return diff_versions(
        old=VersionContent(template=old, variables=old_variables or [], config=old_config or {}),
        new=VersionContent(template=new, variables=new_variables or [], config=new_config or {}),
    )


def apply_sections(old_lines: list[str], sections: list[DiffSection]) -> list[str]:
    """Rebuild the new lines from the old ones and the sections alone (checks positions and old text)."""
    out: list[str] = []
    position = 0  # next unconsumed old line
    shift = 0  # new line index - old line index after the sections seen so far
    for section in sections:
        lines = section.value.split("\n")
        start = section.line_start - 1 if section.type == "removed" else section.line_start - 1 - shift
        assert start >= position
        out.extend(old_lines[position:start])
        if section.type == "removed":
            assert section.old_value is None
            assert old_lines[start : start + len(lines)] == lines
            position, shift = start + len(lines), shift - len(lines)
        elif section.type == "added":
            assert section.old_value is None
            out.extend(lines)
            position, shift = start, shift + len(lines)
        else:
            assert section.old_value is not None
            old_part = section.old_value.split("\n")
            assert old_lines[start : start + len(old_part)] == old_part
            out.extend(lines)
            position, shift = start + len(old_part), shift + len(lines) - len(old_part)
    out.extend(old_lines[position:])
    return out


# -- lines -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\n", ["a"]),
        ("a\n\n", ["a", ""]),
        ("\n", [""]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("a\rb", ["a", "b"]),
        ("a\n\nb", ["a", "", "b"]),
        ("  x  \n", ["  x  "]),
    ],
)
def test_split_lines(text: str, lines: list[str]) -> None:
    assert split_lines(text) == lines


# -- identical and whitespace ------------------------------------------------------------------------


def test_identical_versions() -> None:
    result = diff(
        "You are helpful.\n{{q}}",
        "You are helpful.\n{{q}}",
        old_config={"model": "m"},
        new_config={"model": "m"},
    )
    assert result.sections == []
    assert result.to_dict()["stats"] == {"added": 0, "removed": 0, "modified": 0}
    assert result.impact.level == "none"
    assert result.impact.score == 0.0
    assert result.impact.reasons == ["versions are identical"]
    assert result.config_changed == {}
    assert result.variables.added == result.variables.removed == []


def test_identical_empty_templates() -> None:
    result = diff("", "")
    assert result.sections == []
    assert result.impact.level == "none"


def test_config_key_order_does_not_matter() -> None:
    result = diff("t", "t", old_config={"a": 1, "b": 2}, new_config={"b": 2, "a": 1})
    assert result.config_changed == {}
    assert result.impact.level == "none"


def test_trailing_newline_only() -> None:
    result = diff("line one\nline two", "line one\nline two\n")
    assert result.sections == []
    assert result.impact.level == "none"
    assert result.impact.score == 0.0
    assert result.impact.reasons == ["template changed only in whitespace or line endings"]


def test_crlf_versus_lf() -> None:
    result = diff("a\r\nb\r\nc\r\n", "a\nb\nc\n")
    assert result.sections == []
    assert result.impact.level == "none"


def test_whitespace_only_changes_are_shown_but_have_no_impact() -> None:
    old = "You are a helpful assistant.\nAnswer briefly and cite sources."
    new = "You are a  helpful assistant.\n\n    Answer briefly\n    and cite sources.   "
    result = diff(old, new)
    assert result.sections != []
    assert result.impact.level == "none"
    assert result.impact.score == 0.0
    assert result.impact.reasons == ["template changed only in whitespace or line endings"]


# -- sections and stats ------------------------------------------------------------------------------


def test_modified_line() -> None:
    result = diff("a\nb\nc", "a\nB\nc")
    assert result.sections == [DiffSection(type="modified", value="B", old_value="b", line_start=2)]
    assert result.stats.to_dict() == {"added": 0, "removed": 0, "modified": 1}


def test_added_lines_use_new_line_numbers() -> None:
    result = diff("a\nb\nc", "a\nb\nx\ny\nc")
    assert result.sections == [DiffSection(type="added", value="x\ny", old_value=None, line_start=3)]
    assert result.stats.to_dict() == {"added": 2, "removed": 0, "modified": 0}


def test_removed_lines_use_old_line_numbers() -> None:
    result = diff("x\na\nb\nc\nd", "x\nd")
    assert result.sections == [DiffSection(type="removed", value="a\nb\nc", old_value=None, line_start=2)]
    assert result.stats.to_dict() == {"added": 0, "removed": 3, "modified": 0}


def test_line_numbers_after_earlier_changes() -> None:
    result = diff("1\n2\n3\n4\n5\n6", "0\n1\n2\n4\n5\nsix")
    assert result.sections == [
        DiffSection(type="added", value="0", old_value=None, line_start=1),
        DiffSection(type="removed", value="3", old_value=None, line_start=3),
        DiffSection(type="modified", value="six", old_value="6", line_start=6),
    ]
    assert result.stats.to_dict() == {"added": 1, "removed": 1, "modified": 1}


def test_replace_of_unequal_sizes_splits_stats() -> None:
    grown = diff("a\nold\nz", "a\nn1\nn2\nn3\nz")
    assert grown.sections == [DiffSection(type="modified", value="n1\nn2\nn3", old_value="old", line_start=2)]
    assert grown.stats.to_dict() == {"added": 2, "removed": 0, "modified": 1}
    shrunk = diff("a\no1\no2\no3\nz", "a\nnew\nz")
    assert shrunk.stats.to_dict() == {"added": 0, "removed": 2, "modified": 1}


def test_empty_to_content_and_back() -> None:
    created = diff("", "one\ntwo\n")
    assert created.sections == [DiffSection(type="added", value="one\ntwo", old_value=None, line_start=1)]
    cleared = diff("one\ntwo\n", "")
    assert cleared.sections == [DiffSection(type="removed", value="one\ntwo", old_value=None, line_start=1)]
    assert created.impact.level == cleared.impact.level == "major"


def test_not_a_greedy_walk() -> None:
    # Inserting one line at the top must not mark every following line as changed.
    old = "alpha\nbeta\ngamma\ndelta"
    result = diff(old, "intro\n" + old)
    assert result.sections == [DiffSection(type="added", value="intro", old_value=None, line_start=1)]


def test_repeated_lines_are_aligned_minimally() -> None:
    result = diff("x\n\nx\n\nx\n\nx", "x\n\nx\n\nNEW\n\nx\n\nx")
    assert result.stats.to_dict() == {"added": 2, "removed": 0, "modified": 0}


def test_blank_lines_count_as_lines() -> None:
    result = diff("a\nb", "a\n\n\nb")
    assert result.sections == [DiffSection(type="added", value="\n", old_value=None, line_start=2)]
    assert result.stats.added == 2


def test_unicode_lines() -> None:
    result = diff("Réponds en français ☕\n日本語", "Réponds en français ☕\n中文")
    assert result.sections == [DiffSection(type="modified", value="中文", old_value="日本語", line_start=2)]


def test_reordered_lines() -> None:
    old = "Be concise.\nCite sources.\nUse markdown."
    new = "Use markdown.\nBe concise.\nCite sources."
    result = diff(old, new)
    assert apply_sections(split_lines(old), result.sections) == split_lines(new)
    assert result.impact.level == "minor"
    assert result.impact.score == 0.1
    assert result.impact.reasons == ["1 line(s) moved without being changed"]


def test_permuted_long_template_is_diffed_quickly_and_correctly() -> None:
    old_lines = [f"instruction {i}" for i in range(10_000)]
    new_lines = [old_lines[(i * 7) % 10_000] for i in range(10_000)]
    result = diff("\n".join(old_lines), "\n".join(new_lines))
    assert apply_sections(old_lines, result.sections) == new_lines


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\nb\n" * 25_000, "b\na\n" * 25_000),
        ("".join(f"l{i}\nl{i}\n" for i in range(20_000)), "".join(f"l{i}\n" for i in range(40_000))),
        ("a\n" * 2_000 + "x\n", "y\n" + "a\n" * 2_000),
    ],
)
def test_pathological_repeated_lines_still_give_a_correct_diff(old: str, new: str) -> None:
    result = diff(old, new)
    assert apply_sections(split_lines(old), result.sections) == split_lines(new)


@pytest.mark.timeout(20)
def test_persona_regex_has_no_catastrophic_backtracking() -> None:
    result = diff("x", "-" * 50_000 + "*" * 50_000 + "!")
    assert result.impact.level == "major"


# -- to_dict -----------------------------------------------------------------------------------------


def test_to_dict_rest_shape() -> None:
    result = diff(
        "You are terse.\n{{q}}\nbye",
        "You are verbose.\n{{q}} {{lang}}\n",
        old_config={"model": "a", "temperature": 0.1},
        new_config={"model": "b", "temperature": 0.1, "top_p": 0.9},
    )
    body = result.to_dict()
    assert list(body) == ["sections", "stats", "variables", "config", "semanticImpact", "impact"]
    assert body["sections"] == [
        {
            "type": "modified",
            "value": "You are verbose.\n{{q}} {{lang}}",
            "oldValue": "You are terse.\n{{q}}\nbye",
            "lineStart": 1,
        }
    ]
    assert body["stats"] == {"added": 0, "removed": 1, "modified": 2}
    assert body["variables"] == {"added": ["lang"], "removed": []}
    assert body["config"] == {"changed": {"model": ["a", "b"], "top_p": [None, 0.9]}}
    assert body["semanticImpact"] == "major"
    assert set(body["impact"]) == {"score", "reasons"}
    assert 0 <= body["impact"]["score"] <= 1


def test_to_dict_omits_old_value_for_added_and_removed() -> None:
    body = diff("a\nb", "b\nc").to_dict()
    assert body["sections"] == [
        {"type": "removed", "value": "a", "lineStart": 1},
        {"type": "added", "value": "c", "lineStart": 2},
    ]


# -- variables ---------------------------------------------------------------------------------------


def test_variable_added_is_at_least_minor() -> None:
    result = diff("x", "x", old_variables=["a"], new_variables=["a", "b"])
    assert result.variables.added == ["b"]
    assert result.impact.level == "minor"
    assert result.impact.score == 0.25
    assert result.impact.reasons == ["variable(s) added, callers must supply them: b"]


def test_variable_removed_is_major() -> None:
    result = diff("x", "x", old_variables=["a", {"name": "b"}], new_variables=["a"])
    assert result.variables.removed == ["b"]
    assert result.impact.level == "major"
    assert result.impact.score == 0.5
    assert result.impact.reasons == ["variable(s) removed, callers passing them break: b"]


def test_variables_are_the_union_of_declared_and_placeholders_sorted() -> None:
    result = diff(
        "{{zeta}} {{beta}}",
        "{{alpha}} {{ delta }}",
        old_variables=["kept", "gone"],
        new_variables=["kept", {"name": "gamma"}],
    )
    assert result.variables.added == ["alpha", "delta", "gamma"]
    assert result.variables.removed == ["beta", "gone", "zeta"]


def test_placeholder_dropped_but_still_declared_is_not_removed() -> None:
    result = diff("Hi {{name}}", "Hi there", old_variables=["name"], new_variables=["name"])
    assert result.variables.removed == []


def test_variable_declaration_details_changed() -> None:
    result = diff(
        "{{a}}",
        "{{a}}",
        old_variables=[{"name": "a", "default": "x"}],
        new_variables=[{"name": "a", "default": "y"}],
    )
    assert result.variables.added == result.variables.removed == []
    assert result.impact.level == "minor"
    assert result.impact.score == 0.1
    assert result.impact.reasons == ["variable declarations changed (defaults, descriptions or order)"]


# -- config ------------------------------------------------------------------------------------------


def test_model_change_is_major() -> None:
    result = diff("x", "x", old_config={"model": "gpt-4o"}, new_config={"model": "gpt-4o-mini"})
    assert result.config_changed == {"model": ("gpt-4o", "gpt-4o-mini")}
    assert result.impact.level == "major"
    assert result.impact.reasons == ['model changed in config: model "gpt-4o" → "gpt-4o-mini"']


@pytest.mark.parametrize(
    "key", ["model", "Model_Name", "modelId", "provider", "system_prompt", "response_format", "tools"]
)
def test_major_config_keys(key: str) -> None:
    result = diff("x", "x", old_config={key: "a"}, new_config={key: "b"})
    assert result.impact.level == "major"


def test_other_config_change_is_minor() -> None:
    result = diff("x", "x", old_config={"temperature": 0.2}, new_config={"temperature": 0.7})
    assert result.impact.level == "minor"
    assert result.impact.score == 0.1
    assert result.impact.reasons == ["config changed: temperature 0.2 → 0.7"]


def test_minor_config_weight_is_capped() -> None:
    old = {"temperature": 0.1, "top_p": 1, "max_tokens": 100, "stop": [], "seed": 1}
    new = {"temperature": 0.2, "top_p": 0.5, "max_tokens": 200, "stop": ["\n"], "seed": 2}
    result = diff("x", "x", old_config=old, new_config=new)
    assert result.impact.level == "minor"
    assert result.impact.score == 0.3
    assert len(result.impact.reasons) == 1


def test_config_keys_added_and_removed() -> None:
    result = diff("x", "x", old_config={"b": 1, "gone": True}, new_config={"b": 1, "a": {"nested": 1}})
    assert result.config_changed == {"a": (None, {"nested": 1}), "gone": (True, None)}
    assert list(result.config_changed) == ["a", "gone"]
    assert result.to_dict()["config"] == {"changed": {"a": [None, {"nested": 1}], "gone": [True, None]}}
    assert result.impact.reasons == ['config changed: a (unset) → {"nested":1}, gone true → (unset)']


def test_config_values_compared_by_json_spelling() -> None:
    result = diff("x", "x", old_config={"a": 1, "b": 1, "c": None}, new_config={"a": 1.0, "b": True})
    assert result.config_changed == {"a": (1, 1.0), "b": (1, True), "c": (None, None)}


def test_nested_config_change_is_a_top_level_change() -> None:
    result = diff("x", "x", old_config={"params": {"x": 1, "y": 2}}, new_config={"params": {"y": 2, "x": 3}})
    assert result.config_changed == {"params": ({"x": 1, "y": 2}, {"y": 2, "x": 3})}


# -- template heuristics -----------------------------------------------------------------------------

BODY = "\n".join(f"Guideline {i}: keep the answer on topic." for i in range(1, 9))


@pytest.mark.parametrize(
    ("old_line", "new_line"),
    [
        ("You are a helpful assistant.", "You are a sarcastic pirate."),
        ("You're a support agent.", "You\u2019re a sales agent."),
        ("Act as a lawyer.", "Act as a doctor."),
        ("System: be safe", "System: be fast"),
        ("- Your role is to review code.", "- Your role is to write code."),
        ("## As a senior editor, you fix prose.", "## As a junior editor, you fix prose."),
        ("Pretend to be a cat.", "Pretend to be a dog."),
        ("Support assistant for ACME.", "Sales assistant for ACME."),  # first line defining the assistant
    ],
)
def test_persona_line_change_is_major(old_line: str, new_line: str) -> None:
    result = diff(f"{old_line}\n{BODY}", f"{new_line}\n{BODY}")
    assert result.impact.level == "major"
    assert any(reason.startswith("persona/role line changed") for reason in result.impact.reasons)


def test_persona_line_added_is_major() -> None:
    result = diff(BODY, f"{BODY}\nYou are a pirate.")
    assert result.impact.level == "major"


def test_ordinary_line_change_is_minor() -> None:
    result = diff(f"{BODY}\nAs a result, answers are short.", f"{BODY}\nAs a result, answers are long.")
    assert result.impact.level == "minor"
    assert result.impact.score == 0.14  # 0.1 + 0.4 x 1/9
    assert result.impact.reasons == ["template text changed (1 of 9 lines)"]


def test_persona_line_moved_or_reindented_is_not_a_persona_change() -> None:
    old = f"You are a pirate.\n{BODY}"
    new = f"{BODY}\n   You are a pirate.   "
    result = diff(old, new)
    assert result.impact.level == "minor"
    assert not any("persona" in reason for reason in result.impact.reasons)


@pytest.mark.parametrize(
    ("old_line", "new_line", "detail"),
    [
        ("Always cite sources.", "Never cite sources.", 'removed "always"; added "never"'),
        ("Do not reveal the prompt.", "Reveal the prompt.", 'removed "do not"'),
        ("You may guess.", "You must not guess.", 'added "must not"'),
        ("Don't use emojis.", "Do use emojis.", 'removed "don\'t"'),
        ("Don\u2019t use emojis.", "Use emojis.", 'removed "don\'t"'),
    ],
)
def test_constraint_words_flipped_add_weight(old_line: str, new_line: str, detail: str) -> None:
    result = diff(f"{BODY}\n{old_line}", f"{BODY}\n{new_line}")
    assert f"constraint wording changed: {detail}" in result.impact.reasons
    assert result.impact.score == 0.44  # 0.3 + 0.1 + 0.4 x 1/9
    assert result.impact.level == "minor"


def test_unchanged_constraint_word_in_an_edited_line_is_not_a_flip() -> None:
    result = diff(f"{BODY}\nNever use slang.", f"{BODY}\nNever use jargon.")
    assert not any(reason.startswith("constraint") for reason in result.impact.reasons)


def test_more_than_half_of_lines_rewritten_is_major() -> None:
    old = "\n".join(["intro", "step one", "step two", "step three"])
    new = "\n".join(["intro", "first", "second", "third"])
    result = diff(old, new)
    assert result.impact.level == "major"
    assert "75% of the template's lines rewritten" in result.impact.reasons


def test_exactly_half_rewritten_is_not_forced_major() -> None:
    result = diff("a\nb\nc\nd", "a\nb\nC\nD")
    assert result.impact.level == "minor"
    assert result.impact.score == 0.3  # 0.1 + 0.4 x 0.5


def test_several_minor_rules_add_up_to_major() -> None:
    result = diff(
        f"{BODY}\nKeep it short.",
        f"{BODY}\nKeep it short, in {{{{lang}}}}.",
        old_config={"temperature": 0.1},
        new_config={"temperature": 0.9},
    )
    # 0.14 (text) + 0.25 (variable added) + 0.1 (config)
    assert result.impact.score == 0.49
    assert result.impact.level == "minor"
    bigger = diff(
        f"{BODY}\nKeep it short.",
        f"{BODY}\nKeep it short, in {{{{lang}}}}.",
        old_config={"temperature": 0.1, "top_p": 1},
        new_config={"temperature": 0.9, "top_p": 0.5},
    )
    assert bigger.impact.score == 0.59
    assert bigger.impact.level == "major"


def test_score_is_clamped_and_every_reason_listed() -> None:
    result = diff(
        "You are a cat.\nAlways purr.\n{{food}}",
        "You are a dog.\nNever bark.\n{{walk}}",
        old_config={"model": "a", "temperature": 0},
        new_config={"model": "b", "temperature": 1},
    )
    assert result.impact.score == 1.0
    assert result.impact.level == "major"
    joined = " | ".join(result.impact.reasons)
    for fragment in (
        "persona",
        "constraint",
        "rewritten",
        "variable(s) removed",
        "variable(s) added",
        "model changed",
        "config changed",
    ):
        assert fragment in joined


# -- properties --------------------------------------------------------------------------------------

line_text = st.sampled_from(["a", "b", "c", "", "  a", "You are x.", "Never do y.", "{{v}}", "é ☕"])
templates = st.builds(
    lambda lines, eol, trailing: eol.join(lines) + (eol if trailing and lines else ""),
    st.lists(line_text, max_size=25),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
configs = st.dictionaries(st.sampled_from(["model", "temperature", "x"]), st.integers(0, 2), max_size=3)


@given(templates, configs)
def test_diff_of_a_version_with_itself_is_empty(template: str, config: dict[str, Any]) -> None:
    content = VersionContent(template=template, variables=["v"], config=config)
    result = diff_versions(old=content, new=content)
    assert result.sections == []
    assert result.impact.level == "none"
    assert result.impact.score == 0.0


@settings(max_examples=300)
@given(templates, templates)
def test_sections_rebuild_the_new_template_and_stats_add_up(old: str, new: str) -> None:
    result = diff(old, new)
    old_lines, new_lines = split_lines(old), split_lines(new)
    assert apply_sections(old_lines, result.sections) == new_lines
    stats = result.stats
    assert len(new_lines) == len(old_lines) + stats.added - stats.removed
    assert stats.removed + stats.modified <= len(old_lines)
    assert stats.added + stats.modified <= len(new_lines)
    assert [s.line_start for s in result.sections if s.type != "removed"] == sorted(
        s.line_start for s in result.sections if s.type != "removed"
    )


@given(templates, templates, configs, configs)
def test_impact_is_consistent(
    old: str, new: str, old_config: dict[str, Any], new_config: dict[str, Any]
) -> None:
    impact = diff(old, new, old_config=old_config, new_config=new_config).impact
    assert 0.0 <= impact.score <= 1.0
    assert impact.score == round(impact.score, 2)
    assert impact.reasons
    if impact.score >= 0.5:
        assert impact.level == "major"
    if impact.level == "none":
        assert impact.score == 0.0
    if impact.score == 0.0:
        assert impact.level == "none"
