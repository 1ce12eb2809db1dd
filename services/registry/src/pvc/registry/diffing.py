"""Compare two versions: a line diff of the template, variable and config changes, and an impact estimate.

Lines
    Templates are split into lines after normalising CRLF and lone CR to LF; a final line terminator does
    not start an extra empty line (``"a\\n"`` and ``"a"`` are both one line). Changes that only touch line
    endings or the final newline therefore produce no sections; the impact reports them as whitespace.

Sections and stats
    Lines are matched by stripping the common prefix and suffix, anchoring on lines that occur exactly
    once on each side (patience diff, which keeps permuted or very long templates fast and reads well),
    and running ``difflib.SequenceMatcher(autojunk=False)`` on what lies between anchors. Only a stretch
    of many repeated lines whose matching would exceed a fixed work budget is left unmatched and shown
    as one replaced block; the result is always a correct diff.

    A ``replace`` block becomes one ``modified`` section, ``insert`` an ``added`` one and ``delete`` a
    ``removed`` one. ``lineStart`` is 1-based, in the new template for added/modified and in the old
    one for removed. Stats count lines: a replace block of ``a`` old and ``b`` new lines counts
    ``min(a, b)`` as modified and the surplus as added (``b > a``) or removed (``a > b``), so that
    ``len(new) == len(old) + added - removed`` and ``unchanged + removed + modified == len(old)``.

Semantic impact (weights add up; the score is clamped to 0..1 and rounded to 2 decimals)
    The template rules look only at lines whose content really changed: lines are compared with blank
    lines dropped and runs of whitespace collapsed, and a line that disappears in one place and
    reappears in another counts as moved, not changed. ``share`` is the number of changed lines (the
    larger of the old and new side) over the line count of the longer template.

    ======================================================  ======================  =======
    rule                                                    weight                  forces
    ======================================================  ======================  =======
    identical content                                       0 (impact ``none``)
    template differs only in whitespace / line endings      0
    persona/role line changed, added or removed             0.6                     major
    a variable removed (breaks callers)                     0.5                     major
    model identity changed in config (1)                    0.5                     major
    system prompt (2) or output contract (3) in config      0.5                     major
    more than 50% of the template's lines rewritten         0.5                     major
    constraint words (never/always/must/do not...) differ   0.3
    a variable added                                        0.25
    template text changed (up to 50% of lines)              0.1 + 0.4 x share
    other config keys changed (temperature, max_tokens...)  0.1 each, at most 0.3
    variable declarations changed (default/description)     0.1
    lines only moved                                        0.1
    ======================================================  ======================  =======

    Config keys are matched ignoring case and non-alphanumerics: (1) model, model_name, model_id,
    provider, engine, deployment; (2) system, system_prompt, system_message, instructions;
    (3) response_format, tools, functions, tool_choice, function_call, json_schema, output_schema.
    A key that is added or removed counts as changed.

    The level is ``major`` if a forcing rule fired or the score is at least 0.5, ``minor`` if the score
    is above 0, else ``none``. Every rule that fired adds a human-readable reason.

    A persona/role line is one starting (after list or heading markers) with "You are", "You're",
    "Act as", "Acting as", "Pretend to be/you are", "Your role/job/task/persona/purpose/goal",
    "As a/an <something>, you/I", "System:", "Role:" or "Persona:"; the first non-blank line also counts
    when it mentions the assistant (assistant, agent, bot, chatbot, persona, role, character).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Literal

from pvc.registry.content import canonical_json, declared_variable_names, template_variables

__all__ = [
    "DiffResult",
    "DiffSection",
    "DiffStats",
    "Impact",
    "ImpactLevel",
    "SectionType",
    "VariableChanges",
    "VersionContent",
    "diff_versions",
    "split_lines",
]

SectionType = Literal["added", "removed", "modified"]
ImpactLevel = Literal["none", "minor", "major"]

# Opcode of a non-equal block: (tag, i1, i2, j1, j2) as in SequenceMatcher.get_opcodes().
_Opcode = tuple[str, int, int, int, int]

# A sub-range of the two line lists: (old_lo, old_hi, new_lo, new_hi).
_Box = tuple[int, int, int, int]

#: Work allowed to SequenceMatcher per diff (see _match_cost); a few tenths of a second at worst for a
#: 100,000-char template made of repeated lines. Real prompts stay far below it.
_MATCH_BUDGET = 2_000_000

_PERSONA_RE = re.compile(
    r"""^[-*>#\s]*(?:\d+[.)][-*>#\s]*)?    # list, quote or heading markers (no nested repeats: no ReDoS)
    (?:you\s+are|you'?re|act(?:ing)?\s+as|pretend\s+(?:to\s+be|you\s+are)
      |your\s+(?:role|job|task|persona|purpose|goal)
      |as\s+an?\s+[^,.;:]{1,60},\s*(?:you|i)\b     # "As a senior editor, you ..."
      |(?:system|role|persona)\s*:)
    """,
    re.IGNORECASE | re.VERBOSE,
)
_ASSISTANT_RE = re.compile(r"\b(?:assistant|agent|bot|chatbot|persona|role|character)\b", re.IGNORECASE)
_CONSTRAINT_RE = re.compile(
    r"\b(?:must\s+not|mustn't|do\s+not|don't|does\s+not|doesn't|should\s+not|shouldn't|cannot|can't"
    r"|never|always|must|only|not|no)\b",
    re.IGNORECASE,
)

# Config keys compared case- and separator-insensitively ("max_tokens" == "maxTokens").
_MODEL_KEYS = frozenset({"model", "modelname", "modelid", "provider", "engine", "deployment"})
_SYSTEM_KEYS = frozenset({"system", "systemprompt", "systemmessage", "instructions"})
_CONTRACT_KEYS = frozenset(
    {"responseformat", "tools", "functions", "toolchoice", "functioncall", "jsonschema", "outputschema"}
)

_MAJOR_SCORE = 0.5
_REWRITE_SHARE = 0.5
_MAX_QUOTE = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionContent:
    """The part of a version a diff looks at."""

    template: str
    variables: list[Any] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffSection:
    """One changed block of lines."""

    type: SectionType
    value: str
    old_value: str | None
    line_start: int

    def to_dict(self) -> dict[str, Any]:
        """REST shape; ``oldValue`` only for modified sections."""
        out: dict[str, Any] = {"type": self.type, "value": self.value}
        if self.old_value is not None:
            out["oldValue"] = self.old_value
        out["lineStart"] = self.line_start
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffStats:
    """Changed line counts (see the module docstring for how replace blocks are split)."""

    added: int = 0
    removed: int = 0
    modified: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"added": self.added, "removed": self.removed, "modified": self.modified}


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableChanges:
    """Variable names (declared or used as placeholders) that appear or disappear, sorted."""

    added: list[str]
    removed: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Impact:
    """How much the change is likely to alter the model's behaviour, and why."""

    level: ImpactLevel
    score: float
    reasons: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffResult:
    """Everything the diff route returns except ``fromVersion``/``toVersion``."""

    sections: list[DiffSection]
    stats: DiffStats
    variables: VariableChanges
    config_changed: dict[str, tuple[Any, Any]]
    impact: Impact

    def to_dict(self) -> dict[str, Any]:
        """REST shape: ``sections, stats, variables, config, semanticImpact, impact``."""
        return {
            "sections": [section.to_dict() for section in self.sections],
            "stats": self.stats.to_dict(),
            "variables": {"added": list(self.variables.added), "removed": list(self.variables.removed)},
            "config": {"changed": {key: [old, new] for key, (old, new) in self.config_changed.items()}},
            "semanticImpact": self.impact.level,
            "impact": {"score": self.impact.score, "reasons": list(self.impact.reasons)},
        }


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` with CRLF/CR read as LF; a final terminator does not add an empty line."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    if not normalized:
        return []
    lines = normalized.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _unique_anchors(old: Sequence[str], new: Sequence[str], box: _Box) -> list[tuple[int, int]]:
    """Longest increasing chain of lines that occur exactly once on each side of ``box`` (patience)."""
    alo, ahi, blo, bhi = box
    old_counts = Counter(old[alo:ahi])
    new_counts = Counter(new[blo:bhi])
    new_index = {new[j]: j for j in range(blo, bhi) if new_counts[new[j]] == 1 and old_counts[new[j]] == 1}
    candidates = [(i, new_index[old[i]]) for i in range(alo, ahi) if old[i] in new_index]
    # Longest increasing subsequence of j over candidates ordered by i, by patience sorting.
    tops: list[int] = []  # j of the last candidate of each pile
    top_index: list[int] = []  # index into candidates of that candidate
    back: list[int] = []
    for k, (_i, j) in enumerate(candidates):
        pile = bisect_left(tops, j)
        back.append(top_index[pile - 1] if pile else -1)
        if pile == len(tops):
            tops.append(j)
            top_index.append(k)
        else:
            tops[pile] = j
            top_index[pile] = k
    chain: list[tuple[int, int]] = []
    k = top_index[-1] if top_index else -1
    while k >= 0:
        chain.append(candidates[k])
        k = back[k]
    chain.reverse()
    return chain


def _match_cost(old: Sequence[str], new: Sequence[str]) -> int:
    """Rough work of SequenceMatcher on these lines: equal-line pairs plus one scan per matching block."""
    new_counts = Counter(new)
    pairs = sum(count * new_counts[line] for line, count in Counter(old).items() if line in new_counts)
    return pairs + len(old) * min(len(old), len(new))


def _matched_lines(old: Sequence[str], new: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` with ``old[i] == new[j]`` kept by the diff, increasing in both coordinates.

    Common prefix and suffix first, then lines unique on both sides as anchors (patience diff), then
    ``SequenceMatcher(autojunk=False)`` on what lies between anchors. That keeps a permuted 10,000-line
    template fast; a stretch of many repeated lines whose matching would exceed the shared work budget
    is left unmatched (reported as one replaced block) rather than taking seconds.
    """
    matched: list[tuple[int, int]] = []
    budget = _MATCH_BUDGET
    stack: list[_Box] = [(0, len(old), 0, len(new))]
    while stack:
        alo, ahi, blo, bhi = stack.pop()
        while alo < ahi and blo < bhi and old[alo] == new[blo]:
            matched.append((alo, blo))
            alo, blo = alo + 1, blo + 1
        while alo < ahi and blo < bhi and old[ahi - 1] == new[bhi - 1]:
            ahi, bhi = ahi - 1, bhi - 1
            matched.append((ahi, bhi))
        if alo == ahi or blo == bhi:
            continue
        anchors = _unique_anchors(old, new, (alo, ahi, blo, bhi))
        if anchors:
            i_prev, j_prev = alo, blo
            for i, j in anchors:
                stack.append((i_prev, i, j_prev, j))
                matched.append((i, j))
                i_prev, j_prev = i + 1, j + 1
            stack.append((i_prev, ahi, j_prev, bhi))
            continue
        old_gap, new_gap = old[alo:ahi], new[blo:bhi]
        cost = _match_cost(old_gap, new_gap)
        if cost > budget:
            continue
        budget -= cost
        matcher = SequenceMatcher(None, old_gap, new_gap, autojunk=False)
        for i, j, size in matcher.get_matching_blocks():
            matched.extend((alo + i + k, blo + j + k) for k in range(size))
    matched.sort()
    return matched


def _changed_blocks(old: Sequence[str], new: Sequence[str]) -> list[_Opcode]:
    """Non-equal opcodes (``replace``/``insert``/``delete``, as in difflib) of a line diff."""
    blocks: list[_Opcode] = []
    i = j = 0
    for next_i, next_j in [*_matched_lines(old, new), (len(old), len(new))]:
        if next_i > i or next_j > j:
            tag = "replace" if next_i > i and next_j > j else "delete" if next_i > i else "insert"
            blocks.append((tag, i, next_i, j, next_j))
        i, j = next_i + 1, next_j + 1
    return blocks


def _sections_and_stats(old: list[str], new: list[str]) -> tuple[list[DiffSection], DiffStats]:
    sections: list[DiffSection] = []
    added = removed = modified = 0
    for tag, i1, i2, j1, j2 in _changed_blocks(old, new):
        old_count, new_count = i2 - i1, j2 - j1
        if tag == "replace":
            sections.append(
                DiffSection(
                    type="modified",
                    value="\n".join(new[j1:j2]),
                    old_value="\n".join(old[i1:i2]),
                    line_start=j1 + 1,
                )
            )
            common = min(old_count, new_count)
            modified += common
            added += new_count - common
            removed += old_count - common
        elif tag == "insert":
            sections.append(
                DiffSection(type="added", value="\n".join(new[j1:j2]), old_value=None, line_start=j1 + 1)
            )
            added += new_count
        else:  # delete
            sections.append(
                DiffSection(type="removed", value="\n".join(old[i1:i2]), old_value=None, line_start=i1 + 1)
            )
            removed += old_count
    return sections, DiffStats(added=added, removed=removed, modified=modified)


def _variable_changes(old: VersionContent, new: VersionContent) -> VariableChanges:
    def names(content: VersionContent) -> set[str]:
        return set(declared_variable_names(content.variables)) | set(template_variables(content.template))

    old_names, new_names = names(old), names(new)
    return VariableChanges(added=sorted(new_names - old_names), removed=sorted(old_names - new_names))


def _config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Top-level keys whose value differs; compared as canonical JSON so 1, 1.0 and true stay distinct."""
    changed: dict[str, tuple[Any, Any]] = {}
    for key in sorted(old.keys() | new.keys()):
        if key not in old or key not in new or canonical_json(old[key]) != canonical_json(new[key]):
            changed[key] = (old.get(key), new.get(key))
    return changed


def _quote(text: str) -> str:
    shown = text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 1] + "…"
    return f'"{shown}"'


def _config_value(config: dict[str, Any], key: str) -> str:
    if key not in config:
        return "(unset)"
    text = canonical_json(config[key])
    return text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 1] + "…"


def _config_key_kind(key: str) -> str:
    folded = re.sub(r"[^a-z0-9]", "", key.lower())
    if folded in _MODEL_KEYS:
        return "model"
    if folded in _SYSTEM_KEYS:
        return "system prompt"
    if folded in _CONTRACT_KEYS:
        return "output contract"
    return "other"


def _constraint_terms(lines: Iterable[str]) -> Counter[str]:
    terms: Counter[str] = Counter()
    for line in lines:
        text = line.replace("\u2019", "'")
        terms.update(" ".join(m.group(0).lower().split()) for m in _CONSTRAINT_RE.finditer(text))
    return terms


@dataclass(slots=True)
class _Scorer:
    """Accumulates weights, reasons and whether a rule forces ``major``."""

    total: float = 0.0
    forced_major: bool = False
    reasons: list[str] = field(default_factory=list)

    def add(self, weight: float, reason: str, *, major: bool = False) -> None:
        self.total += weight
        self.forced_major = self.forced_major or major
        self.reasons.append(reason)

    def result(self) -> Impact:
        score = round(min(max(self.total, 0.0), 1.0), 2)
        level: ImpactLevel
        if self.forced_major or score >= _MAJOR_SCORE:
            level = "major"
        elif score > 0:
            level = "minor"
        else:
            level = "none"
        return Impact(level=level, score=score, reasons=list(self.reasons))


def _meaningful_lines(template: str) -> list[str]:
    """Non-blank lines with whitespace runs collapsed: what the template rules compare."""
    collapsed = (" ".join(line.split()) for line in split_lines(template))
    return [line for line in collapsed if line]


def _score_template(scorer: _Scorer, old_template: str, new_template: str) -> None:
    if old_template == new_template:
        return
    if old_template.split() == new_template.split():
        scorer.add(0.0, "template changed only in whitespace or line endings")
        return
    old_lines, new_lines = _meaningful_lines(old_template), _meaningful_lines(new_template)
    old_side: Counter[str] = Counter()
    new_side: Counter[str] = Counter()
    for _tag, i1, i2, j1, j2 in _changed_blocks(old_lines, new_lines):
        old_side.update(old_lines[i1:i2])
        new_side.update(new_lines[j1:j2])
    moved = old_side & new_side
    gone = old_side - new_side
    came = new_side - old_side
    if not gone and not came:
        if moved:
            scorer.add(0.1, f"{moved.total()} line(s) moved without being changed")
        return

    persona = [line for line in (*gone, *came) if _PERSONA_RE.match(line.replace("\u2019", "'"))]
    old_first = old_lines[0] if old_lines else None
    new_first = new_lines[0] if new_lines else None
    if old_first != new_first:
        for first, side in ((old_first, gone), (new_first, came)):
            if first is not None and first in side and first not in persona and _ASSISTANT_RE.search(first):
                persona.append(first)
    if persona:
        more = f" (and {len(persona) - 1} more)" if len(persona) > 1 else ""
        scorer.add(0.6, f"persona/role line changed: {_quote(persona[0])}{more}", major=True)

    old_terms, new_terms = _constraint_terms(gone), _constraint_terms(came)
    if old_terms != new_terms:
        parts = []
        if dropped := sorted((old_terms - new_terms).elements()):
            parts.append("removed " + ", ".join(f'"{term}"' for term in dropped))
        if introduced := sorted((new_terms - old_terms).elements()):
            parts.append("added " + ", ".join(f'"{term}"' for term in introduced))
        scorer.add(0.3, "constraint wording changed: " + "; ".join(parts))

    changed = max(gone.total(), came.total())
    size = max(len(old_lines), len(new_lines))
    share = changed / size
    if share > _REWRITE_SHARE:
        scorer.add(0.5, f"{round(share * 100)}% of the template's lines rewritten", major=True)
    else:
        scorer.add(0.1 + 0.4 * share, f"template text changed ({changed} of {size} lines)")
    if moved:
        scorer.add(0.1, f"{moved.total()} line(s) moved without being changed")


def _score_variables(
    scorer: _Scorer, old: VersionContent, new: VersionContent, changes: VariableChanges
) -> None:
    if changes.removed:
        scorer.add(
            0.5,
            "variable(s) removed, callers passing them break: " + ", ".join(changes.removed),
            major=True,
        )
    if changes.added:
        scorer.add(0.25, "variable(s) added, callers must supply them: " + ", ".join(changes.added))
    if (
        not changes.added
        and not changes.removed
        and canonical_json(old.variables) != canonical_json(new.variables)
    ):
        scorer.add(0.1, "variable declarations changed (defaults, descriptions or order)")


def _score_config(scorer: _Scorer, old: dict[str, Any], new: dict[str, Any], changed: Iterable[str]) -> None:
    minor: list[str] = []
    for key in changed:
        change = f"{key} {_config_value(old, key)} → {_config_value(new, key)}"
        kind = _config_key_kind(key)
        if kind == "other":
            minor.append(change)
        else:
            scorer.add(0.5, f"{kind} changed in config: {change}", major=True)
    if minor:
        scorer.add(min(0.1 * len(minor), 0.3), "config changed: " + ", ".join(minor))


def diff_versions(*, old: VersionContent, new: VersionContent) -> DiffResult:
    """Line diff plus variable/config changes and a heuristic impact (rules in the module docstring)."""
    old_lines, new_lines = split_lines(old.template), split_lines(new.template)
    sections, stats = _sections_and_stats(old_lines, new_lines)
    variables = _variable_changes(old, new)
    config_changed = _config_changes(old.config, new.config)

    scorer = _Scorer()
    if canonical_json([old.template, old.variables, old.config]) == canonical_json(
        [new.template, new.variables, new.config]
    ):
        scorer.add(0.0, "versions are identical")
    else:
        _score_template(scorer, old.template, new.template)
        _score_variables(scorer, old, new, variables)
        _score_config(scorer, old.config, new.config, config_changed)
    return DiffResult(
        sections=sections,
        stats=stats,
        variables=variables,
        config_changed=config_changed,
        impact=scorer.result(),
    )
