"""Split a clinical note into its SOAP sections, however the clinician wrote the headers.

Accepted headers, alone on a line or followed by a colon and text: `S:`/`O:`/`A:`/`P:`,
`Subjective`, `Objective`, `Assessment` (or `Impression`), `Plan`, and the combined
`Assessment and Plan` / `A/P` / `A&P`, in any case, with Markdown emphasis around them.
Text before the first header (or a note with no header at all) is kept as `unlabelled`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(
    r"""^[\s#*_>]*
    (?P<name>subjective|objective
      |(?:assessment|impression)\s*(?:and|&|/)\s*plan|assessment|impression|plan
      |a\s*/\s*p|a\s*&\s*p|[soap])
    [\s*_]*(?P<colon>:)?[\s*_]*(?P<rest>.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
_LIST_MARKER = re.compile(r"^\s*(?:[-*•‣◦]|\d{1,2}[.)])\s+")
# A plan item usually starts with what to do.
_PLAN_VERBS = (
    "start started begin add continue cont increase decrease reduce stop discontinue hold "
    "switch change recheck repeat follow follow-up f/u return rtc refer referral order "
    "obtain check monitor advise advised counsel counselled counseled schedule review "
    "prescribe prescribed give given take trial encourage educate educated send sent "
    "complete completed arrange admit"
)
PLAN_VERBS = frozenset(_PLAN_VERBS.split())
_PULSE = re.compile(r"\d+\s*(?:bpm|/min|,|$)")
# A sentence that starts with a short label and a colon: `... daily. Allergies: NKDA.`
_INLINE_LABEL = re.compile(r"(?<=[.;])\s+(?=[A-Z][A-Za-z/&]*(?: [A-Za-z/&]+){0,2}:\s)")
_PLAN_SPLIT = re.compile(r"\s+[-\u2013\u2014]\s+|;\s+|:\s+")


@dataclass(frozen=True)
class SoapNote:
    """A note's lines by section, list markers removed, blank lines dropped."""

    subjective: tuple[str, ...] = ()
    objective: tuple[str, ...] = ()
    assessment: tuple[str, ...] = ()
    plan: tuple[str, ...] = ()
    unlabelled: tuple[str, ...] = ()

    @property
    def has_sections(self) -> bool:
        return bool(self.subjective or self.objective or self.assessment or self.plan)

    def all_lines(self) -> tuple[str, ...]:
        return self.unlabelled + self.subjective + self.objective + self.assessment + self.plan


def parse_soap(text: str) -> SoapNote:
    sections: dict[str, list[str]] = {
        name: []
        for name in ("subjective", "objective", "assessment", "plan", "combined", "unlabelled")
    }
    current = "unlabelled"
    for raw in _pieces(text):
        header = _header(raw)
        if header is not None:
            current, rest = header
            raw = rest
        line = clean_line(raw)
        if line:
            sections[current].append(line)
    assessment, plan = split_assessment_and_plan(sections["combined"])
    return SoapNote(
        subjective=tuple(sections["subjective"]),
        objective=tuple(sections["objective"]),
        assessment=tuple(sections["assessment"] + assessment),
        plan=tuple(sections["plan"] + plan),
        unlabelled=tuple(sections["unlabelled"]),
    )


def _pieces(text: str) -> list[str]:
    """The note's lines, with `Meds: x. Allergies: y.` split at each inline label."""
    return [piece for line in text.splitlines() for piece in _INLINE_LABEL.split(line)]


def clean_line(raw: str) -> str:
    return _LIST_MARKER.sub("", raw).strip()


def starts_with_plan_verb(text: str) -> bool:
    words = text.lower().split(maxsplit=1)
    return bool(words) and words[0].rstrip(".,:;") in PLAN_VERBS


def split_assessment_and_plan(lines: list[str]) -> tuple[list[str], list[str]]:
    """A combined A/P section: diagnoses to the assessment, what to do to the plan.

    `1. Pneumonia - start amoxicillin` gives both; a line that starts with a plan verb
    is a plan item; anything else is an assessment.
    """
    assessment: list[str] = []
    plan: list[str] = []
    for line in lines:
        if starts_with_plan_verb(line):
            plan.append(line)
            continue
        head, *tail = _PLAN_SPLIT.split(line, maxsplit=1)
        if tail and starts_with_plan_verb(tail[0]):
            assessment.append(head.strip())
            plan.append(tail[0].strip())
        else:
            assessment.append(line)
    return assessment, plan


def _header(raw: str) -> tuple[str, str] | None:
    match = _HEADER.match(raw)
    if match is None:
        return None
    name = re.sub(r"\s+", "", match["name"].lower())
    rest = match["rest"].strip()
    if match["colon"] is None and (rest or len(name) == 1):
        return None  # "Plan to start..." is prose; a lone "A" is not a header.
    if name == "p" and _PULSE.match(rest):
        return None  # "P: 88 bpm" is a pulse in the vitals.
    if ("plan" in name and name != "plan") or name in ("a/p", "a&p"):
        return "combined", rest
    section = {"s": "subjective", "o": "objective", "a": "assessment", "p": "plan"}.get(name)
    if name == "impression":
        section = "assessment"
    return section or name, rest
