"""How a problem is put to a model, and how its completion is read back.

'short' is for tiny byte-level models: ``Q: 68 - 32 =\\nA: <answer>``. The prompt ends with the
opening tag so the model only writes ``36</answer>``; with long instructions the 16 new tokens a
tiny model gets are not enough to reach the answer. 'instruct' is for instruction-tuned models.
'chat' is the 'instruct' text as one user turn of the model's own chat template; the template is
the tokenizer's, so it is applied where the tokenizer is (``Policy.render``), and here 'chat'
reads like 'instruct'. 'auto' (a node config's default) is resolved by the node before any
prompt is made: 'chat' if the tokenizer has a chat template, else 'short' for the built-in tiny
models and 'instruct' for others.
"""

from __future__ import annotations

from typing import Literal

from swarmrl.tasks.extract import CLOSE_TAG, OPEN_TAG
from swarmrl.tasks.problem import Problem, TaskError

PromptStyle = Literal["short", "instruct", "chat"]
STYLES: tuple[str, ...] = ("short", "instruct", "chat")

INSTRUCT_TEMPLATE = (
    "Solve the following problem. Think briefly, then give only the final answer inside "
    "<answer> and </answer>, for example <answer>42</answer>.\n\n"
    "Problem: {question}\n"
)


def _check(style: str) -> None:
    if style not in STYLES:
        raise TaskError(f"unknown prompt style {style!r} (known: {', '.join(STYLES)})")


def format_prompt(problem: Problem, style: str = "short") -> str:
    """The prompt text for ``problem`` in ``style`` ('short' or 'instruct')."""
    _check(style)
    if style == "short":
        return f"Q: {problem.question}\nA: {OPEN_TAG}"
    return INSTRUCT_TEMPLATE.format(question=problem.question)


def format_target(problem: Problem, style: str = "short") -> str:
    """The ideal completion for ``problem`` (supervised warm starts, tests)."""
    _check(style)
    if style == "short":
        return f"{problem.answer}{CLOSE_TAG}"
    return f"{OPEN_TAG}{problem.answer}{CLOSE_TAG}"


def completion_to_answer_text(prompt_style: str, completion: str) -> str:
    """The text answer extraction should see: in 'short' style the prompt already opened the
    ``<answer>`` tag, so it is put back in front of the completion."""
    _check(prompt_style)
    return OPEN_TAG + completion if prompt_style == "short" else completion
