"""Self-care advice texts, per key and language, from the plan's templates.

Keys: `{kind}.{zone}` for every measurement kind, `symptoms.{zone}`, `control.repeat`, rule-specific
keys named by a rule's `advice`, and `emergency`, which goes with every red and cannot be removed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

Language = Literal["nb", "en"]
LANGUAGES: tuple[Language, ...] = ("nb", "en")
EMERGENCY = "emergency"
# A reading no rule could judge only because nothing earlier was there to compare it with (a first weighing):
# kept as the reference, not "could not be assessed, measure again".
REFERENCE = "reference"


class AdviceText(BaseModel):
    """One advice text in both languages the patient may read: Norwegian (`nb`) and English (`en`); neither blank."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nb: str
    en: str

    @model_validator(mode="after")
    def _not_blank(self) -> AdviceText:
        if not self.nb.strip() or not self.en.strip():
            raise ValueError("advice needs a text in both Norwegian (nb) and English (en)")
        return self


class AdviceBook(BaseModel):
    """The self-care advice texts by key. Validation refuses a book whose `emergency` text does not name 113."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    texts: dict[str, AdviceText]

    @model_validator(mode="after")
    def _has_emergency(self) -> AdviceBook:
        notice = self.texts.get(EMERGENCY)
        if notice is None or "113" not in notice.nb or "113" not in notice.en:
            raise ValueError("the advice must have an 'emergency' text naming 113 in every language")
        return self

    def text(self, key: str, language: Language = "nb") -> str:
        """The text for `key` in `language`; KeyError when the book has no such key."""
        entry = self.texts.get(key)
        if entry is None:
            raise KeyError(f"no advice text for {key!r}")
        return entry.nb if language == "nb" else entry.en

    def merged(self, plan_texts: dict[str, AdviceText]) -> AdviceBook:
        """The plan's own texts over the template; the emergency notice is checked again."""
        return AdviceBook(texts={**self.texts, **plan_texts})
