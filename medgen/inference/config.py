"""How to ask a model: one definition of the model-client options that `eval`, `screen` and `cot` share."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator


def endpoint_base(url: str | None) -> str | None:
    """``--endpoint`` as the API's base URL (the full chat-completions URL is accepted too); None stays None."""
    if url is None:
        return None
    if not re.match(r"^https?://", url):
        raise ValueError(f"--endpoint must be an http(s) URL such as http://localhost:8000/v1, got {url!r}")
    return re.sub(r"/chat/completions/?$", "", url.rstrip("/"))  # the client appends the route itself


class InferenceConfig(BaseModel):
    """Which model answers (a checkpoint, or a model behind an OpenAI-compatible endpoint) and how.

    Commands' configs extend it (``EvalConfig``, ``ScreenConfig``, ``CotConfig``); a subclass changes a
    default through ``DEFAULTS`` rather than declaring the field again.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {}
    """Field defaults of a subclass that differ from the ones below (applied when the field is not given)."""

    model: str | None = Field(
        default=None,
        description="Checkpoint (local folder or Hub id); with --endpoint, the model name the server serves.",
        json_schema_extra={"flags": ["--model", "-m"]},
    )
    model_revision: str | None = Field(default=None, description="Hub revision of the checkpoint.")
    endpoint: str | None = Field(
        default=None,
        description="OpenAI-compatible API base URL (e.g. http://localhost:8000/v1); key from $OPENAI_API_KEY.",
    )
    max_new_tokens: int = Field(default=512, gt=0, description="Tokens generated per answer at most.")
    temperature: float | None = Field(
        default=None, ge=0.0, description="Sampling temperature; 0 = greedy (the default)."
    )
    image_max_pixels: int | None = Field(
        default=None,
        description="Resize images to at most this many pixels (checkpoint; default: the bound it was trained "
        "with, else the recipes' 448x448).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Checkpoint dtype."
    )
    device: str | None = Field(
        default=None, description="torch device for checkpoints (default: cuda when available)."
    )
    answer_boxes: bool | None = Field(
        default=None,
        description="Ask for boxes too (the answer variant with boxes: where each answered image's defect is); "
        "unset: as the checkpoint was trained (`answer_boxes` in its train_config.yaml), else no.",
    )
    batch_size: int = Field(default=4, gt=0, description="Questions per generate() call (checkpoint).")
    concurrency: int = Field(default=4, gt=0, description="Requests in flight at once (endpoint).")
    max_retries: int = Field(
        default=4, ge=0, description="Retries per request, with exponential backoff (endpoint)."
    )
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds per request attempt (endpoint).",
        json_schema_extra={"flags": ["--timeout"]},
    )

    @model_validator(mode="before")
    @classmethod
    def _subclass_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.DEFAULTS:
            data = {
                **cls.DEFAULTS,
                **{k: v for k, v in data.items() if v is not None or k not in cls.DEFAULTS},
            }
        return data

    @field_validator("endpoint")
    @classmethod
    def _endpoint_base(cls, url: str | None) -> str | None:
        return endpoint_base(url)

    @model_validator(mode="after")
    def _resolved(self) -> InferenceConfig:
        if self.endpoint and not self.model:
            raise ValueError("--endpoint needs the model name to request: add --model NAME (e.g. gpt-4o)")
        if self.temperature is None:
            self.temperature = self.default_temperature()
        return self

    def default_temperature(self) -> float:
        """The temperature when none is given: greedy."""
        return 0.0
