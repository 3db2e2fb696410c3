"""The COPD daily symptom questionnaire: questions and the answers the local page offers.

The patient compares with their usual state, as COPD action plans ask ("more breathless than usual?").
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator

QUESTIONS: dict[str, tuple[str, ...]] = {
    "breathlessness": ("usual", "worse", "much_worse"),
    "cough": ("usual", "worse", "much_worse"),
    "sputum_amount": ("usual", "more", "much_more"),
    "sputum_colour": ("clear", "white", "yellow_green", "brown_red"),
    "temperature_feeling": ("normal", "feverish"),
}


class Form(StrEnum):
    """What an entry of the patient's history is when it is not a measurement: the questionnaire.

    A questionnaire is history like a reading (`zoning.remembered_answers`): its zone counts in the
    schedule's cadence (a red form means measuring daily) and it is due on its own like a kind.
    """

    QUESTIONNAIRE = "questionnaire"


QUESTIONNAIRE = Form.QUESTIONNAIRE


class Answers(BaseModel):
    """One day's answers; a question left out was not answered (it cannot fire a rule)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answered: AwareDatetime
    answers: dict[str, str]

    @model_validator(mode="after")
    def _known(self) -> Answers:
        for question, answer in self.answers.items():
            if question not in QUESTIONS:
                raise ValueError(f"no question {question!r}")
            if answer not in QUESTIONS[question]:
                raise ValueError(f"{question}: {answer!r} is not one of {', '.join(QUESTIONS[question])}")
        return self
