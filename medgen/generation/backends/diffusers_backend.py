"""The ``diffusers`` backend: any diffusers inpainting / img2img checkpoint, by Hub id or local folder.

Recipes:
    background  inpaint everything outside the product mask, then paste the product pixels back,
                so the product is preserved exactly (at the source's own resolution).
    outpaint    grow the canvas to the target aspect ratio (plus a margin), fill the new area;
                the original pixels are pasted back unchanged.
    img2img     a variation of the whole photo (needs an img2img pipeline / 4-channel UNet).

The pipeline class comes from diffusers itself: ``AutoPipelineForInpainting`` or
``AutoPipelineForImage2Image``, falling back to ``DiffusionPipeline`` for classes those do not map
(FLUX.1 Fill). Models run at ``resolution`` (long side, multiple of 16); outputs are resized back
to the canvas. One call takes a batch of candidates of the same working size (several sources, or
several seeds of one source) as lists, each with its own CPU ``torch.Generator`` seeded from its
seed, so an image depends on its seed, not on the batch it was made in (up to float rounding of
batched kernels).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medgen.errors import MedgenError
from medgen.generation.backends.base import GeneratedImage, GenerationAborted, GenerationRequest
from medgen.generation.config import GenerationConfig, aspect_ratio
from medgen.generation.distributed import ranks
from schemas import GenerationProvenance

MULTIPLE = 16
"""Working sizes are multiples of 16: the VAE's 8x downsampling times FLUX's 2x2 latent packing."""


@dataclass(frozen=True)
class Prepared:
    """One request turned into pipeline inputs."""

    request: GenerationRequest
    prompt: str
    canvas: Image.Image  # RGB at output size: the source, or the source on a grown canvas
    keep: Image.Image | None  # L at output size, 255 = pixels pasted back exactly (None: img2img)
    image: Image.Image  # pipeline input at working size
    mask: Image.Image | None  # L at working size, 255 = generate


def working_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """Scale so the long side is ``resolution``, both sides rounded to a multiple of 16 (at least 16)."""
    scale = resolution / max(width, height)
    return tuple(max(MULTIPLE, round(side * scale / MULTIPLE) * MULTIPLE) for side in (width, height))  # type: ignore[return-value]


def outpaint_canvas(image: Image.Image, aspect: float, margin: float) -> tuple[Image.Image, Image.Image]:
    """The source centred on a canvas of ``aspect`` (W/H) grown by ``margin``, edges replicated; and the keep mask."""
    import cv2

    w, h = image.size
    cw, ch = (math.ceil(h * aspect), h) if w / h < aspect else (w, math.ceil(w / aspect))
    cw, ch = max(round(cw * margin), w), max(round(ch * margin), h)
    left, top = (cw - w) // 2, (ch - h) // 2
    # Replicated edges give the model the source's colours as a starting point for the new area.
    grown = cv2.copyMakeBorder(
        np.asarray(image), top, ch - h - top, left, cw - w - left, cv2.BORDER_REPLICATE
    )
    keep = Image.new("L", (cw, ch), 0)
    keep.paste(255, (left, top, left + w, top + h))
    return Image.fromarray(grown), keep


def _binary(mask: Image.Image) -> Image.Image:
    return mask.point(lambda v: 255 if v >= 128 else 0)


def resolve_device(device: str, dtype: str, local_rank: int = 0) -> tuple[Any, Any]:
    """(torch.device, torch.dtype) for the config's ``device`` / ``dtype``, this rank's GPU for cuda."""
    import torch

    if device == "auto":
        device = (
            "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise MedgenError("--device cuda, but no CUDA GPU is visible to torch: use --device cpu (or auto)")
    if device == "mps" and not torch.backends.mps.is_available():
        raise MedgenError(
            "--device mps, but MPS is not available on this machine: use --device cpu (or auto)"
        )
    if dtype == "auto" and device == "cuda":
        dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif dtype == "auto":
        dtype = "fp16" if device == "mps" else "fp32"
    if device == "cpu" and dtype == "fp16":
        raise MedgenError("fp16 is not supported on cpu: use --dtype fp32 (or bf16), or a GPU")
    torch_device = (
        torch.device("cuda", local_rank % torch.cuda.device_count())
        if device == "cuda"
        else torch.device(device)
    )
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    return torch_device, torch_dtype


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def locate_model(model: str, revision: str | None = None, variant: str | None = None) -> tuple[Path, str]:
    """Local folder of ``model`` (downloaded from the Hub if it is an id) and its revision / content hash."""
    path = Path(model).expanduser()
    if path.exists() or _looks_like_path(model):
        if not path.is_dir():
            raise MedgenError(
                f"model folder {model} not found: pass an existing diffusers folder or a Hub id (org/name)"
            )
        if not (path / "model_index.json").is_file():
            raise MedgenError(
                f"{model} is not a diffusers pipeline folder (no model_index.json): save it with save_pretrained"
            )
        return path.resolve(), local_hash(path)
    from diffusers import DiffusionPipeline

    try:
        folder = Path(DiffusionPipeline.download(model, revision=revision, variant=variant))
    except Exception as error:
        raise MedgenError(
            f"cannot get model {model!r} from the Hugging Face Hub ({_short(error)[:250]}): check the id and "
            "revision, your network or HF_TOKEN for gated models, or pass a local folder"
        ) from None
    # Hub cache layout: .../snapshots/<commit hash>
    return folder, folder.name if folder.parent.name == "snapshots" else revision or "main"


def local_hash(folder: Path) -> str:
    """A content hash of a local checkpoint: every config in full, weights by size and first / last MiB."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        with open(path, "rb") as handle:
            if path.suffix in (".json", ".txt") or size <= 2 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(1 << 20))
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
    return "sha256:" + digest.hexdigest()[:16]


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _from_pretrained(cls: Any, folder: Path, kwargs: dict[str, Any], model: str) -> Any:
    """``cls.from_pretrained``; None when an auto class maps no pipeline for this checkpoint."""
    with warnings.catch_warnings():
        # diffusers >= 0.36 renames torch_dtype to dtype; torch_dtype works across all supported versions.
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        try:
            return cls.from_pretrained(folder, **kwargs)
        except ValueError as error:
            if "AutoPipeline can't find" in str(error):
                return None
            raise MedgenError(f"cannot load {model} as a diffusers pipeline: {_short(error)}") from None
        except (OSError, TypeError, KeyError, ImportError, AttributeError) as error:
            raise MedgenError(f"cannot load {model} as a diffusers pipeline: {_short(error)}") from None


def load_pipeline(config: GenerationConfig, folder: Path, torch_dtype: Any) -> Any:
    """The diffusers pipeline for ``config.recipe``, checked to have the interface the recipe needs."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # medgen shows its own progress bar; the libraries' loading bars would interleave with it.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    auto = AutoPipelineForImage2Image if config.recipe == "img2img" else AutoPipelineForInpainting
    kwargs: dict[str, Any] = {"torch_dtype": torch_dtype}
    if config.variant:
        kwargs["variant"] = config.variant
    # DiffusionPipeline covers classes the auto classes do not map, e.g. FluxFillPipeline.
    pipeline = _from_pretrained(auto, folder, kwargs, config.model) or _from_pretrained(
        DiffusionPipeline, folder, kwargs, config.model
    )
    params = inspect.signature(pipeline.__call__).parameters
    name = type(pipeline).__name__
    if config.recipe == "img2img":
        if "mask_image" in params or "strength" not in params or "image" not in params:
            raise MedgenError(
                f"{config.model} loads as {name}, which has no img2img interface: use --recipe background/outpaint "
                "with it, or an img2img checkpoint for img2img"
            )
        unet = getattr(pipeline, "unet", None)
        if unet is not None and unet.config.in_channels != 4:
            raise MedgenError(
                f"img2img needs a 4-channel UNet, {config.model} has {unet.config.in_channels} (an inpainting "
                "checkpoint): use --recipe background or outpaint with it"
            )
    elif "mask_image" not in params or "image" not in params:
        raise MedgenError(
            f"{config.model} loads as {name}, which has no inpainting interface (no mask_image): recipes "
            f"{config.recipe!r} need an inpainting checkpoint (SD/SDXL inpainting, FLUX.1 Fill)"
        )
    return pipeline


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("diffusers", "torch", "transformers", "accelerate"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    return versions


class DiffusersBackend:
    """Generate candidates with a diffusers pipeline; see the module docstring for the recipes."""

    name = "diffusers"

    def __init__(self, config: GenerationConfig):
        import torch

        self.config = config
        self.device, self.torch_dtype = resolve_device(config.device, config.dtype, ranks().local_rank)
        folder, self.model_revision = locate_model(config.model, config.revision, config.variant)
        self.pipeline = load_pipeline(config, folder, self.torch_dtype)
        if config.offload:
            if self.device.type != "cuda":
                raise MedgenError("--offload needs a CUDA GPU: drop it on cpu / mps")
            self.pipeline.enable_model_cpu_offload(gpu_id=self.device.index or 0)
        else:
            self.pipeline.to(self.device)
        vae = getattr(self.pipeline, "vae", None)
        if config.vae_tiling and vae is not None:
            vae.enable_tiling()
        if config.vae_slicing and vae is not None:
            vae.enable_slicing()
        self.pipeline.set_progress_bar_config(disable=True)
        self.params = inspect.signature(self.pipeline.__call__).parameters
        self.aspect = aspect_ratio(config.outpaint_aspect)
        self.extra = {
            "pipeline": type(self.pipeline).__name__,
            "scheduler": type(self.pipeline.scheduler).__name__
            if hasattr(self.pipeline, "scheduler")
            else "",
            "device": str(self.device),
            "dtype": str(self.torch_dtype).removeprefix("torch."),
            "versions": library_versions(),
        }
        self._cache: dict[str, tuple[Image.Image, Image.Image | None, Image.Image, Image.Image | None]] = {}
        self._oom = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)

    # inputs -----------------------------------------------------------------------------------

    def prepare(self, request: GenerationRequest) -> Prepared:
        """Canvas, keep mask and working-size pipeline inputs of one request."""
        canvas, keep, image, mask = self._inputs(request)
        return Prepared(request, self.config.prompt_for(request.seed), canvas, keep, image, mask)

    def _inputs(
        self, request: GenerationRequest
    ) -> tuple[Image.Image, Image.Image | None, Image.Image, Image.Image | None]:
        """A source's canvas, keep mask and working-size inputs, computed once per source and batch."""
        key = request.source.id
        if key in self._cache:
            return self._cache[key]
        config = self.config
        source = request.image.convert("RGB")
        if config.recipe == "outpaint":
            canvas, keep = outpaint_canvas(source, self.aspect, config.outpaint_margin)
        elif config.recipe == "background":
            product = request.mask.convert("L")
            canvas, keep = (
                source,
                _binary(product if product.size == source.size else product.resize(source.size)),
            )
        else:
            canvas, keep = source, None
        size = working_size(*canvas.size, config.resolution)
        image = canvas.resize(size, Image.Resampling.LANCZOS)
        mask = (
            None
            if keep is None
            else _binary(keep.resize(size, Image.Resampling.BILINEAR)).point(lambda v: 255 - v)
        )
        self._cache[key] = (canvas, keep, image, mask)
        return self._cache[key]

    def call_kwargs(self, group: list[Prepared]) -> dict[str, Any]:
        """Pipeline arguments for one call over ``group`` (same working size)."""
        import torch

        config = self.config
        width, height = group[0].image.size
        generators = [torch.Generator("cpu").manual_seed(p.request.seed) for p in group]
        # Lists, one entry per candidate, even for one source: with num_images_per_prompt diffusers
        # VAE-encodes the shared image once with the first generator only, so a candidate would
        # depend on its batch. Lists keep every candidate a function of its own seed.
        kwargs: dict[str, Any] = {
            "prompt": [p.prompt for p in group],
            "image": [p.image for p in group],
            "num_images_per_prompt": 1,
        }
        if group[0].mask is not None:
            kwargs["mask_image"] = [p.mask for p in group]
        negative = [config.negative_prompt] * len(group)
        optional = {
            "negative_prompt": negative if config.negative_prompt else None,
            "strength": config.strength,
            "height": height if config.recipe != "img2img" else None,
            "width": width if config.recipe != "img2img" else None,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None and k in self.params})
        kwargs.update(
            num_inference_steps=config.steps,
            guidance_scale=config.guidance,
            generator=generators,
            output_type="pil",
        )
        return kwargs

    # generation -------------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One pipeline call per working size among ``requests``; results in request order."""
        prepared = [self.prepare(request) for request in requests]
        self._cache.clear()  # per batch: memory stays bounded
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(prepared):
            groups.setdefault(item.image.size, []).append(index)
        results: list[GeneratedImage | None] = [None] * len(prepared)
        for indices in groups.values():
            group = [prepared[i] for i in indices]
            for i, item, image in zip(indices, group, self._call(group), strict=True):
                results[i] = self._finish(item, image)
        return [result for result in results if result is not None]

    def _call(self, group: list[Prepared]) -> list[Image.Image]:
        kwargs = self.call_kwargs(group)
        try:
            images = self.pipeline(**kwargs).images
        except self._oom:
            self._free()
            raise GenerationAborted(self._oom_advice(group)) from None
        except RuntimeError as error:
            if "out of memory" not in str(error).lower():
                raise
            self._free()
            raise GenerationAborted(self._oom_advice(group)) from None
        if len(images) != len(group):
            raise GenerationAborted(
                f"{type(self.pipeline).__name__} returned {len(images)} images for {len(group)}"
            )
        return images

    def _oom_advice(self, group: list[Prepared]) -> str:
        w, h = group[0].image.size
        return (
            f"out of {self.device.type} memory generating {len(group)} images of {w}x{h}: try --offload, a smaller "
            f"--batch-size (now {self.config.batch_size}) or --resolution, or --vae-tiling / --vae-slicing"
        )

    def _free(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _finish(self, item: Prepared, generated: Image.Image) -> GeneratedImage:
        """Back to canvas size, kept pixels pasted back exactly, with provenance."""
        config = self.config
        output = generated.convert("RGB")
        if output.size != item.canvas.size:
            output = output.resize(item.canvas.size, Image.Resampling.LANCZOS)
        if item.keep is not None:
            output.paste(item.canvas, (0, 0), item.keep)
        provenance = GenerationProvenance(
            backend=self.name,
            model_id=config.model,
            model_revision=self.model_revision,
            recipe=config.recipe,
            prompt=item.prompt,
            negative_prompt=config.negative_prompt if "negative_prompt" in self.params else "",
            seed=item.request.seed,
            steps=config.steps,
            guidance=config.guidance,
            strength=config.strength if "strength" in self.params else 1.0,
            width=output.width,
            height=output.height,
            extra=json.dumps({**self.extra, "working_size": list(item.image.size)}, sort_keys=True),
        )
        return GeneratedImage(request=item.request, image=output, provenance=provenance)
