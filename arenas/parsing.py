"""Tolerant parsing of free text from language models into legal action strings.

A model may reason before it answers, so the answer is looked for in this order:
1. the last ``<answer>...</answer>`` tag;
2. the last line of the form ``Answer: X`` (also ``Action:``, ``Move:``, ``Final answer:``);
3. the whole text, then its last non-empty line.
Each candidate is normalised (case, surrounding whitespace, quotes, brackets and trailing punctuation)
and matched exactly against the normalised legal actions; failing that, it is accepted when exactly one
legal action occurs in it as a whole word ("I bet." -> "bet"; "bet or pass" is ambiguous -> None).
Only the last ``MAX_PARSE_CHARS`` characters are read, so hostile megabyte outputs cost nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_PARSE_CHARS = 4096

_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_LINE = re.compile(r"^[ \t*#>-]*(?:final[ \t]+)?(?:answer|action|move|choice)[ \t*]*[:=][ \t]*(.*?)[ \t]*$", re.I | re.M)
_MESSAGE = re.compile(r"<message(?:\s+to\s*=\s*[\"']?([\w\-, ]+)[\"']?)?\s*>(.*?)</message>", re.S | re.I)
_STRIP = " \t\r\n\"'`*_.,;:!?()[]{}<>"
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, trim quotes/brackets/punctuation at both ends, collapse inner whitespace."""
    return _SPACES.sub(" ", text.strip(_STRIP).lower())


def answer_candidates(text: str) -> list[str]:
    """Where the answer may be, most explicit first (see the module docstring)."""
    text = text[-MAX_PARSE_CHARS:]
    tags = _TAG.findall(text)
    if tags:
        return [tags[-1]]
    lines = [m for m in _LINE.findall(text) if m.strip()]
    if lines:
        return [lines[-1]]
    nonempty = [line for line in text.splitlines() if line.strip()]
    return [text] + ([nonempty[-1]] if len(nonempty) > 1 else [])


def match_choice(candidate: str, table: dict[str, str]) -> str | None:
    """Exact normalised match, else the single legal action that occurs as a whole word."""
    key = normalize(candidate)
    if key in table:
        return table[key]
    hits = {table[k] for k in table if k and re.search(rf"(?<!\w){re.escape(k)}(?!\w)", key)}
    return hits.pop() if len(hits) == 1 else None


def parse_choice(text: str, legal: Iterable[str], aliases: dict[str, str] | None = None) -> str | None:
    """Map free text to one of ``legal`` (returned in its canonical spelling), or None.

    ``aliases`` maps extra spellings to legal actions (``{"check": "pass", "call": "bet"}``); an alias is
    used only when its target is legal now.
    """
    legal = list(legal)
    if text in legal:  # the common case, and the fast path
        return text
    table = {normalize(a): a for a in legal}
    for alias, target in (aliases or {}).items():
        if target in legal:
            table.setdefault(normalize(alias), target)
    for candidate in answer_candidates(text):
        choice = match_choice(candidate, table)
        if choice is not None:
            return choice
    return None


def split_message(text: str) -> tuple[str | None, list[str] | None, str]:
    """Split ``<message [to="a,b"]>...</message>`` from the rest of an output.

    Returns (message or None, recipients or None for all neighbours, remaining text for the arena).
    Only the first message tag counts; every message tag is removed from the remainder.
    """
    text = text[-4 * MAX_PARSE_CHARS:]
    found = _MESSAGE.search(text)
    if found is None:
        return None, None, text
    to = [t.strip() for t in found.group(1).split(",") if t.strip()] if found.group(1) else None
    return found.group(2).strip(), to, _MESSAGE.sub(" ", text)
