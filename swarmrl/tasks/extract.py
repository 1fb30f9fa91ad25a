"""Answer extraction from completion text, in bounded time on any input.

Order: the last complete ``<answer>...</answer>`` tag, then the last balanced ``\\boxed{...}``,
then the last number. Everything here scans with ``str.find``/``rfind`` or linear regexes,
after a length check, so megabytes of junk or deeply nested tags cost microseconds to
milliseconds, never seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from swarmrl.protocol.messages import MAX_ANSWER_CHARS, MAX_COMPLETION_CHARS

OPEN_TAG = "<answer>"
CLOSE_TAG = "</answer>"
MAX_TEXT_CHARS = MAX_COMPLETION_CHARS + len(OPEN_TAG)
"""Longer texts are not scored (the wire caps a completion at MAX_COMPLETION_CHARS)."""
MAX_TAGS_TRIED = 64
"""How many closing tags / boxes we look back through before giving up (bounds the work)."""

# One-pass, no nested quantifiers: cannot backtrack catastrophically.
_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")

Source = Literal["tag", "boxed", "number"]


@dataclass(frozen=True)
class Extracted:
    answer: str | None
    source: Source | None
    reason: str = ""


def _last_tag(text: str) -> str | None:
    end = len(text)
    for _ in range(MAX_TAGS_TRIED):
        close = text.rfind(CLOSE_TAG, 0, end)
        if close < 0:
            return None
        start = text.rfind(OPEN_TAG, 0, close)
        if start < 0:
            return None
        content = text[start + len(OPEN_TAG):close]
        if CLOSE_TAG not in content:
            return content
        # A stray closing tag (e.g. "<answer>5</answer></answer>"): try the one before it.
        end = close
    return None


def _last_boxed(text: str) -> str | None:
    end = len(text)
    for _ in range(MAX_TAGS_TRIED):
        at = text.rfind("\\boxed{", 0, end)
        if at < 0:
            return None
        i = start = at + len("\\boxed{")
        depth = 1
        limit = min(len(text), start + MAX_ANSWER_CHARS + 1)
        while i < limit:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
            i += 1
        end = at  # unbalanced or too long: look at an earlier box
    return None


def _last_number(text: str) -> str | None:
    last = None
    for m in _NUMBER.finditer(text):
        last = m
    return last.group(0) if last else None


_FINDERS: tuple[tuple[Source, Callable[[str], str | None]], ...] = (
    ("tag", _last_tag),
    ("boxed", _last_boxed),
    ("number", _last_number),
)


def extract(text: str) -> Extracted:
    """The answer in ``text`` and where it came from; ``answer`` is None when there is none."""
    if not isinstance(text, str):
        return Extracted(None, None, "not text")
    if len(text) > MAX_TEXT_CHARS:
        return Extracted(None, None, f"text longer than {MAX_TEXT_CHARS} chars")
    if "\x00" in text:
        return Extracted(None, None, "text contains NUL bytes")
    for source, finder in _FINDERS:
        found = finder(text)
        if found is None:
            continue
        if source == "tag":
            # "<answer>so \\boxed{5}</answer>": the box inside the tag is the answer.
            found = _last_boxed(found) or found
        found = found.strip()
        if not found:
            if source == "tag":
                return Extracted(None, None, "empty <answer> tag")
            continue
        if len(found) > MAX_ANSWER_CHARS:
            return Extracted(None, None, f"answer longer than {MAX_ANSWER_CHARS} chars")
        return Extracted(found, source)
    return Extracted(None, None, "no answer found")


def extract_answer(text: str) -> str | None:
    """The last complete ``<answer>`` tag's content, else ``\\boxed{}``, else the last number."""
    return extract(text).answer


def has_answer_tag(text: str) -> bool:
    """True when ``text`` holds a complete, non-empty ``<answer>...</answer>`` tag."""
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS or "\x00" in text:
        return False
    content = _last_tag(text)
    return content is not None and bool(content.strip()) and len(content) <= MAX_ANSWER_CHARS
