"""What the REST service publishes in /openapi.json: every answer's shape, every error's, and what is required.

The schema says what the service really does, checked by schemathesis in the suite: errors are ErrorBody (one
sentence), never FastAPI's list of validation errors; a label sent as feedback is one of the model's classes.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator

PREDICTION_ID = r"^[0-9a-f]{32}$"
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_-]{8,64}$"


NUMBER = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


class ErrorBody(BaseModel):
    detail: str = Field(description="one plain sentence: what went wrong and what to do")


ERROR_DESCRIPTIONS = {
    400: "An image is empty, or the body cannot be parsed (for example JSON that is not UTF-8).",
    401: "The X-API-Key header is missing or wrong (only on a service started with a key).",
    404: "No prediction with this id is in the log.",
    409: "This prediction already received the most feedback labels one prediction may get.",
    413: "The request or one image is larger than the limit, or an image has too many pixels.",
    415: "A file is not an image this service can read.",
    422: "The request does not match this description (the sentence names the field).",
    500: "An internal error; the details stay in the service's log.",
    503: "The prediction log cannot be reached right now; nothing was answered or recorded. Retry shortly.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each listed status with the ErrorBody model (replacing FastAPI's default 422)."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


class Answer(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1, description="calibrated probability")


class Result(BaseModel):
    id: str = Field(description="the prediction id: send it to /feedback with the true label")
    filename: str
    predictions: list[Answer] = Field(description="the top-k labels, most probable first (none for score runs)")
    labels: list[str] | None = Field(None, description="tag runs: every tag at or above its own threshold")
    value: float | None = Field(None, description="score runs: the predicted number")
    interval: list[float] | None = Field(None, description="score runs: the range that holds the true value at "
                                         "`coverage` (split conformal)")
    coverage: float | None = Field(None, description="score runs: how often such ranges hold the true value")
    set: list[str] | None = Field(None, description="one-label runs: the classes the truth is among at "
                                  "`set_coverage` (split conformal)")
    set_coverage: float | None = Field(None, description="one-label runs: how often such sets hold the truth")
    unsure: bool = Field(description="the top probability is below the run's threshold: refer to a person")
    unknown: bool = Field(description="the image is unlike every training image")
    latency_ms: float


class PredictResponse(BaseModel):
    model: str = Field(description="the run id")
    results: list[Result] = Field(description="one per image, in the order sent")


class FeedbackResponse(BaseModel):
    id: str
    label: str = Field(description="the label received")
    counted_label: str = Field(description="the label the Monitor's accuracy counts: the first one given")
    known_label: bool = Field(description="always true: only the model's classes are accepted")


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    replica: str = Field(description="which process answered (host:pid)")
    uptime_s: float
    requests: int = Field(description="requests to /predict, /feedback and /model since the start")
    idle_s: float = Field(description="seconds since the last such request (or the start)")
    batches: int
    images: int
    model_busy_s: float


class Validation(BaseModel):
    accuracy: float | None
    macro_f1: float | None
    images: int | None


class ModelCard(BaseModel):
    run_id: str
    labels: list[str]
    backbone: str
    created: float | None
    image_size: int
    validation: Validation


class _FeedbackBase(BaseModel):
    @field_validator("label", mode="before", check_fields=False)
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            raise ValueError("a label must not contain control characters")
        return value


def feedback_model(labels: list[str], truth: str = "label") -> type[BaseModel]:
    """The /feedback body for one model: its id pattern, and the true answer as its task writes it (Task.truth): one
    of its classes, a list of its tags (empty: none of them), or the true number written as text."""
    kinds = {
        "label": (Literal[tuple(labels)] if labels else str,
                  Field(description="the true label of that image: one of the model's classes")),
        "tags": (list[Literal[tuple(labels)]] if labels else list[str],
                 Field(max_length=max(len(labels), 1), description="the true tags of that image: a list of the "
                                                                   "model's tags, each once (empty: none of them)")),
        "value": (str, Field(pattern=NUMBER, max_length=32, description="the true value of that image")),
    }
    return create_model(
        "Feedback", __base__=_FeedbackBase,
        id=(str, Field(pattern=PREDICTION_ID, description="the id of a prediction, as /predict returned it")),
        label=kinds[truth if truth in kinds else "label"],
    )
