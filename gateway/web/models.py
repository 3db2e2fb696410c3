"""The JSON API's request and response models (described at /api/openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel


class AnswersIn(BaseModel):
    answers: dict[str, str]
    id: str | None = None  # the form's id (from the page): the same answers sent again are stored once


class AnswerResult(BaseModel):
    id: str
    zone: str
    zone_word: str
    advice: list[str]


class Done(BaseModel):
    ok: bool
    detail: str
