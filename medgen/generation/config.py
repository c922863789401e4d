"""The generation config: which backend and model, which recipe, which prompts, how many candidates.

Loaded from a YAML file (``medgen generate --config gen.yaml``) and/or command-line flags (flags
win). The resolved config is saved with every run (``runs/<run_id>/config.yaml`` and the
``generation_runs`` table), so a run can be reproduced from that file alone.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medgen.errors import MedgenError, config_error, one_line
from schemas.taxonomy import NUM_CANDIDATES

DEFECT_KINDS: tuple[str, ...] = (
    "product_warped",
    "text_garbled",
    "color_shifted",
    "shadow_missing",
    "shadow_direction_wrong",
    "lighting_inconsistent",
    "floating",
    "scale_wrong",
    "product_cropped",
    "visible_seam",
    "repeated_texture",
)
"""Taxonomy tags the synthetic backend knows how to inject."""


class SyntheticOptions(BaseModel):
    """Settings of the synthetic backend."""

    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(
        default=512, ge=128, le=2048, description="Width and height of each candidate, pixels."
    )
    defective_per_source: tuple[int, int] = Field(
        default=(1, 3),
        description="Min and max number of defective candidates among a source's four (the rest are clean).",
    )
    max_defects_per_candidate: int = Field(
        default=2, ge=1, le=4, description="Most defects injected into one defective candidate."
    )
    strength: tuple[float, float] = Field(
        default=(0.6, 1.0), description="Range of defect strength in (0, 1]; higher = more visible."
    )
    defects: tuple[str, ...] = Field(default=DEFECT_KINDS, description="Which defect tags may be injected.")

    @field_validator("defects")
    @classmethod
    def _known_defects(cls, defects: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in defects if d not in DEFECT_KINDS]
        if unknown:
            raise ValueError(
                f"the synthetic backend cannot inject {', '.join(unknown)}; choose among {', '.join(DEFECT_KINDS)}"
            )
        return tuple(dict.fromkeys(defects))

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticOptions:
        low, high = self.defective_per_source
        if not 0 <= low <= high <= NUM_CANDIDATES:
            raise ValueError(
                f"defective_per_source must be (min, max) with 0 <= min <= max <= {NUM_CANDIDATES}"
            )
        if high > 0 and not self.defects:
            raise ValueError(
                "defects is empty: enable at least one defect, or set defective_per_source to [0, 0]"
            )
        s_low, s_high = self.strength
        if not 0 < s_low <= s_high <= 1:
            raise ValueError("strength must be (min, max) with 0 < min <= max <= 1")
        return self


DEFAULT_MODEL = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"

DEFAULT_SCENES: tuple[str, ...] = (
    "a medicine box standing on a pharmacy shelf among other products, bright store lighting, product photo",
    "a medicine package on a white marble bathroom counter next to a sink, soft morning light, photorealistic",
    "a medicine box on a wooden kitchen table beside a glass of water, natural window light, photorealistic",
    "a medicine product on a seamless studio backdrop, soft box lighting, gentle shadow, commercial photo",
    "a medicine package on a bedside table next to a lamp, warm evening light, photorealistic",
    "a medicine box on a clean office desk next to a laptop, daylight, shallow depth of field",
    "a medicine package in an open first-aid kit on a table, even lighting, product photo",
    "a medicine box on a pharmacy counter in front of blurred shelves, professional retail photo",
)
"""Scene prompt templates for medicine products; ``{product}`` is replaced by ``product_name`` when present."""

DEFAULT_NEGATIVE = "deformed, distorted product, garbled text, blurry, low quality, watermark, cartoon, floating object, duplicate"


class GenerationConfig(BaseModel):
    """Everything that decides what ``medgen generate`` makes. Saved, resolved, with every run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    backend: Literal["diffusers", "synthetic"] = Field(
        default="diffusers",
        description="'diffusers' (a diffusion model) or 'synthetic' (CPU compositing with known defects).",
        json_schema_extra={"flags": ["--backend", "-b"]},
    )
    candidates: int = Field(
        default=NUM_CANDIDATES,
        ge=1,
        le=NUM_CANDIDATES,
        description="Candidates per source (slots A..).",
        json_schema_extra={"flags": ["--candidates", "-n"]},
    )
    seed: int = Field(
        default=0,
        ge=0,
        description="Base seed; each candidate's seed derives from it, the source and the slot.",
    )
    resolution: int = Field(
        default=512,
        ge=32,
        le=4096,
        description="Long side, in pixels, the model works at (rounded down to a multiple of 16); with the "
        "synthetic backend, the candidates' side.",
    )
    recipe: Literal["background", "outpaint", "img2img"] = Field(
        default="background",
        description="background: new scene outside the product mask; outpaint: extend the canvas; img2img: variation.",
    )
    model: str = Field(default=DEFAULT_MODEL, description="Hub id or local folder of a diffusers checkpoint.")
    revision: str | None = Field(
        default=None, description="Hub branch, tag or commit to load (default: main)."
    )
    variant: str | None = Field(default=None, description="Weights variant to load, e.g. 'fp16'.")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        default="auto", description="auto = cuda (this rank's GPU), else mps, else cpu."
    )
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = Field(
        default="auto",
        description="auto = bf16 on GPUs that support it, else fp16 on GPU / mps, fp32 on cpu.",
    )
    steps: int = Field(default=30, ge=1, le=1000, description="Denoising steps.")
    guidance: float = Field(default=7.5, ge=0.0, le=100.0, description="Classifier-free guidance scale.")
    strength: float = Field(
        default=0.99, gt=0.0, le=1.0, description="How much of the input is re-noised (img2img / inpainting)."
    )
    negative_prompt: str = Field(
        default=DEFAULT_NEGATIVE, description="What the model should avoid ('' for none)."
    )
    scenes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCENES),
        min_length=1,
        description="Scene prompt templates; each candidate's prompt is drawn from them by its seed.",
    )
    product_name: str = Field(default="medicine box", description="Replaces {product} in scene templates.")
    outpaint_aspect: str = Field(
        default="4:3",
        description="outpaint: target aspect ratio W:H of the canvas.",
        json_schema_extra={"flags": ["--aspect"]},
    )
    outpaint_margin: float = Field(
        default=1.25,
        ge=1.0,
        le=4.0,
        description="Extra canvas growth beyond the aspect ratio, so every side gets new area.",
    )
    batch_size: int = Field(default=4, ge=1, le=256, description="Images per pipeline call.")
    drop_failing: bool = Field(
        False,
        description=(
            "Check each new candidate against its original (`medgen check`) and keep clearly broken ones from"
            " annotators (recorded with the reason, files kept); their slots are made again with other seeds."
        ),
    )
    drop_retries: int = Field(
        2, ge=0, le=10, description="With --drop-failing: times a dropped slot is remade."
    )
    offload: bool = Field(
        default=False, description="Model CPU offload: slower, far less GPU memory (needs a GPU)."
    )
    vae_tiling: bool = Field(
        default=False, description="Decode the VAE in tiles (large images on small GPUs)."
    )
    vae_slicing: bool = Field(
        default=False, description="Decode the VAE one image at a time (large batches)."
    )
    synthetic: SyntheticOptions = Field(
        default_factory=SyntheticOptions, description="Options of the synthetic backend."
    )

    @field_validator("outpaint_aspect")
    @classmethod
    def _aspect(cls, value: str) -> str:
        aspect_ratio(value)
        return value

    @field_validator("scenes")
    @classmethod
    def _scenes(cls, scenes: list[str]) -> list[str]:
        if any(not scene.strip() for scene in scenes):
            raise ValueError("scene prompts must not be empty")
        return scenes

    @model_validator(mode="after")
    def _devices(self) -> GenerationConfig:
        if self.device == "cpu" and self.dtype == "fp16":
            raise ValueError("fp16 is not supported on cpu: use --dtype fp32 (or bf16), or a GPU device")
        if int(self.steps * self.strength) < 1:
            raise ValueError(
                f"steps x strength ({self.steps} x {self.strength}) leaves no denoising step: raise --steps"
            )
        if self.offload and self.device in ("cpu", "mps"):
            raise ValueError(
                "--offload moves weights between CPU and a CUDA GPU: drop it, or use --device cuda/auto"
            )
        return self

    def prompt_for(self, seed: int) -> str:
        """The scene prompt of the candidate with this seed: same seed, same prompt."""
        template = random.Random(seed).choice(self.scenes)
        return template.replace("{product}", self.product_name)


def aspect_ratio(text: str) -> float:
    """'4:3' -> 1.333...; raises ValueError with the expected form."""
    try:
        w, h = (float(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"aspect ratio must look like W:H (e.g. 4:3, 16:9), got {text!r}") from None
    if w <= 0 or h <= 0 or not 0.2 <= w / h <= 5:
        raise ValueError(f"aspect ratio {text!r} must be positive and between 1:5 and 5:1")
    return w / h


def load_config(path: Path | None = None, **overrides: Any) -> GenerationConfig:
    """Read ``path`` (YAML) if given, apply ``overrides`` that are not None, validate."""
    import yaml  # not at import: the CLI builds generate's options from this module at start-up

    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise MedgenError(f"generation config {path} not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise MedgenError(f"{path} is not valid YAML: {one_line(error)}") from None
        if not isinstance(data, dict):
            raise MedgenError(f"{path} must hold a mapping of config fields, got {type(data).__name__}")
    data.update({key: value for key, value in overrides.items() if value is not None})
    if overrides.get("resolution") is not None and data.get("backend") == "synthetic":
        # --resolution sizes whatever makes the candidates: the synthetic backend draws them at its own size.
        data["synthetic"] = {**(data.get("synthetic") or {}), "resolution": overrides["resolution"]}
    try:
        return GenerationConfig.model_validate(data)
    except ValidationError as error:
        raise config_error(
            error, f"invalid generation config{f' in {path}' if path is not None else ''}"
        ) from None


def dump_config(config: GenerationConfig) -> str:
    """The resolved config as YAML, loadable by ``load_config``."""
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
