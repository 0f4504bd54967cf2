"""Prompt texts of the answer slice: each sheet row's question after the video, errors naming the video."""

from __future__ import annotations

import json

import pytest

from vidsme.prompts import QA_PREFIX, SYSTEM_QA, answer_item, format_answer, format_question

BASE = {"system": SYSTEM_QA, "text": "Only give the best option.", "assistant_prefix": QA_PREFIX}


def test_qa_row_replaces_only_the_user_text() -> None:
    row = {"video_id": "v1", "question": "Which way?", "options": json.dumps(["left", "right"]), "answer": "(B) right"}
    prompt, answer = answer_item(row, BASE)
    assert prompt == {**BASE, "text": format_question("Which way?", ["left", "right"])}
    assert answer == "(B) right" == format_answer(["left", "right"], 1)


def test_caption_row_uses_instruction_and_caption() -> None:
    row = {"video_id": "v2", "question": "", "options": "", "answer": "", "instruction": "Describe it.", "caption": "A dog runs."}
    prompt, answer = answer_item(row, {"system": "s"})
    assert prompt == {"system": "s", "text": "Describe it."} and answer == "A dog runs."


@pytest.mark.parametrize("row, match", [
    ({"video_id": "v3"}, "video v3: no question"),
    ({"video_id": "v4", "question": "Q?", "options": "[1, 2", "answer": "(A) 1"}, "video v4: options is not a JSON list"),
    ({"video_id": "v5", "question": "Q?", "options": '["a", "b"]', "answer": ""}, "video v5: .*needs question, options"),
    ({"video_id": "v6", "instruction": "Describe it.", "caption": ""}, "video v6: no question"),
])
def test_rows_without_an_answer_are_named(row: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        answer_item(row, BASE)
