"""math-verify behind a guard: equivalence of math answers in bounded time, on any thread.

math-verify bounds its own time with ``signal.alarm``, which works only on the main thread;
nodes verify in worker threads, where we must turn its timeouts off. Without them a single
answer such as ``2^{3^{4^{5}}}`` makes sympy work forever, so every expression first passes
:func:`is_safe_expression`, a conservative filter of what sympy might blow up on. On the main
thread (when nobody else owns SIGALRM) math-verify's own alarm is kept as a second line.
"""

from __future__ import annotations

import re
import signal
import threading

MATH_MAX_CHARS = 256
MAX_EXPONENT = 1000
_ALARM_SECONDS = 1

_DIGIT_RUN = re.compile(r"[0-9]{41,}")
_FORBIDDEN = re.compile(
    r"binom|\\choose|\\Gamma|\\gamma|factorial|\\prod|\\sum|\\int|\\lim|\\zeta|\\operatorname"
)
_FACTORIAL = re.compile(r"(?<![0-9])[0-9]{1,3}!")
_EXPONENT_OK = re.compile(r"[A-Za-z0-9+\-/.\\{}]{1,16}")
_POWER = re.compile(r"\^|\*\*")
_BARE_EXPONENT = re.compile(r"[+-]?[A-Za-z0-9.]+")


def _exponent(text: str, at: int) -> tuple[str, int] | None:
    """The exponent starting at ``at`` (after ``^``/``**``) and the index after it."""
    n = len(text)
    while at < n and text[at] == " ":
        at += 1
    if at >= n:
        return None
    if text[at] in "{(":
        close = "}" if text[at] == "{" else ")"
        depth, i = 0, at
        while i < n:
            if text[i] == text[at]:
                depth += 1
            elif text[i] == close:
                depth -= 1
                if depth == 0:
                    return text[at + 1:i], i + 1
            i += 1
        return None
    m = _BARE_EXPONENT.match(text, at)
    return (m.group(0), m.end()) if m else None


def _group_before(text: str, end: int) -> str | None:
    """The bracketed group that ends just before ``end`` (``(...)``, ``{...}``, ``[...]``)."""
    pairs = {")": "(", "}": "{", "]": "["}
    if end <= 0 or text[end - 1] not in pairs:
        return None
    close, open_ = text[end - 1], pairs[text[end - 1]]
    depth, i = 0, end - 1
    while i >= 0:
        if text[i] == close:
            depth += 1
        elif text[i] == open_:
            depth -= 1
            if depth == 0:
                return text[i:end]
        i -= 1
    return ""


def is_safe_expression(text: str) -> bool:
    """False for text sympy might take unbounded time or memory on (conservative)."""
    if len(text) > MATH_MAX_CHARS or any(ord(c) < 32 and c not in "\t\n" for c in text):
        return False
    if _DIGIT_RUN.search(text) or _FORBIDDEN.search(text):
        return False
    # Factorials only of small literals: "5!" yes, "(10^3)!" or "99999!" no.
    if text.count("!") != len(_FACTORIAL.findall(text)):
        return False
    powers = list(_POWER.finditer(text))
    if len(powers) > 4:
        return False
    for m in powers:
        found = _exponent(text, m.end())
        if found is None:
            return False
        exp, after = found
        # (x^a)^b is a tower too.
        head = text[: m.start()].rstrip()
        group = _group_before(head, len(head))
        if group is not None and (group == "" or _POWER.search(group)):
            return False
        # No towers (a power in the exponent, or right after it) and only small literals.
        if _POWER.search(exp) or _POWER.match(text, after) or not _EXPONENT_OK.fullmatch(exp):
            return False
        if any(int(d) > MAX_EXPONENT for d in re.findall(r"[0-9]+", exp)):
            return False
    return True


def _alarm_usable() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        return (signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
                and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
    except (AttributeError, ValueError):  # pragma: no cover - no SIGALRM on this platform
        return False


def _import_math_verify():
    import math_verify
    import math_verify.grader
    import math_verify.parser

    # We run without its timeouts on purpose (see module doc); silence its once-per-process
    # warning about that.
    for mod in (math_verify.parser, math_verify.grader):
        if hasattr(mod, "TIMEOUT_WARNING_SHOWN"):
            mod.TIMEOUT_WARNING_SHOWN = True
    return math_verify


def _wrap(text: str) -> str:
    text = text.strip()
    if text.startswith("$") or text.startswith("\\(") or text.startswith("\\["):
        return text
    return f"${text}$"


def math_equal(gold: str, answer: str) -> tuple[bool | None, str]:
    """Whether ``answer`` equals ``gold`` mathematically.

    Returns ``(None, reason)`` when math-verify cannot decide (refused, unparsable, failed);
    the caller then falls back to a plain comparison.
    """
    if not (is_safe_expression(gold) and is_safe_expression(answer)):
        return None, "math-verify skipped: expression too large or unsafe to evaluate"
    try:
        mv = _import_math_verify()
        t = _ALARM_SECONDS if _alarm_usable() else None
        g = mv.parse(_wrap(gold), parsing_timeout=t)
        a = mv.parse(_wrap(answer), parsing_timeout=t)
        if not g or not a:
            return None, "math-verify could not parse"
        return bool(mv.verify(g, a, timeout_seconds=t)), "math-verify"
    except BaseException as e:  # noqa: BLE001 - its timeout is raised as a BaseException subclass
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return None, f"math-verify failed: {type(e).__name__}"
