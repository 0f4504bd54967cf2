"""The paper's prompts (METHOD section 5), shared by the data generator, training and the paper configs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SYSTEM_QA = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "select the best option that accurately addresses the question."
)
SYSTEM_CAPTION = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "answer the given questions."
)
CAPTION_INSTRUCTION = "Describe the following video in detail, including the actions and scenes."
QA_TEXT = "Only give the best option."
QA_PREFIX = "Best Option: "

LETTERS = "ABCDEFGH"


def format_question(question: str, options: list[str]) -> str:
    """The paper's multiple-choice user text (METHOD section 5)."""
    if not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"need 2-{len(LETTERS)} options, got {len(options)}: {options!r}")
    body = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
    return f"Question: {question}\nOptions:\n{body}\nOnly give the best option."


def format_answer(options: list[str], index: int) -> str:
    """The answer string, e.g. ``(B) left``."""
    return f"({LETTERS[index]}) {options[index]}"


def answer_item(row: Mapping[str, Any], prompt: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(prompt, answer text) of one sample-sheet row for the answer-token slice.

    The prompt is the configured `prompt` with only its user text replaced: the row's multiple-choice
    question (`question` + `options`, scored text `answer`) or, failing that, its `instruction`
    (scored text `caption`). The system text and assistant prefix are kept, and the user text comes
    after the video, so the video-token positions see exactly the configured prompt.
    """
    get = lambda k: str(row.get(k) or "").strip()  # noqa: E731
    vid = get("video_id") or "?"
    if get("question") or get("options"):
        try:
            options = json.loads(get("options") or "null")
        except json.JSONDecodeError as e:
            raise ValueError(f"video {vid}: options is not a JSON list ({e})") from None
        if not isinstance(options, list) or not get("answer"):
            raise ValueError(f"video {vid}: the answer slice needs question, options (JSON list) and answer")
        text, answer = format_question(get("question"), [str(o) for o in options]), get("answer")
    elif get("instruction") and get("caption"):
        text, answer = get("instruction"), get("caption")
    else:
        raise ValueError(f"video {vid}: no question/options/answer or instruction/caption to score "
                         "(the answer slice, scoring.answer_slice, needs one per video)")
    return {**dict(prompt), "text": text}, answer
