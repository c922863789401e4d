"""Tiny random-weight Stable Diffusion pipelines, built in code and saved to a folder.

They have the real pipeline classes, configs and file layout of a Hub checkpoint (so the
``diffusers`` backend loads them exactly as it loads SD 1.5 inpainting), but a few hundred
thousand random weights: tests, the benchmark and the demo run them on CPU in milliseconds,
offline. Their images are noise, not scenes.

``build_tiny_pipeline(path)`` saves a ``StableDiffusionInpaintPipeline`` (9-channel UNet);
``build_tiny_pipeline(path, kind="img2img")`` a ``StableDiffusionImg2ImgPipeline`` (4 channels).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

TOKENIZER_MAX_LENGTH = 160
"""Character-level tokens: long enough for the default scene prompts, so nothing is truncated."""


def _byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet, each symbol alone and as a word end, plus the two specials."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    symbols = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {symbol: i for i, symbol in enumerate(symbols)}


def tiny_tokenizer() -> Any:
    """A CLIPTokenizer with a byte-level vocabulary and no merges: every character is a token."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab.write_text(json.dumps(_byte_level_vocab()))
        merges.write_text("#version: 0.2\n")
        # from_pretrained reads vocab.json + merges.txt with both the slow and the tokenizers-backed class.
        return CLIPTokenizer.from_pretrained(
            tmp, model_max_length=TOKENIZER_MAX_LENGTH, pad_token="<|endoftext|>"
        )


def tiny_components(kind: Literal["inpaint", "img2img"] = "inpaint", seed: int = 0) -> dict[str, Any]:
    """The components of a tiny SD pipeline, with weights drawn from ``seed``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=9 if kind == "inpaint" else 4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    # Four blocks give the usual 8x latent downsampling, so a 256 px image is a 32 px latent.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=256,
    )
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=TOKENIZER_MAX_LENGTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            projection_dim=32,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def build_tiny_pipeline(path: Path, kind: Literal["inpaint", "img2img"] = "inpaint", seed: int = 0) -> Path:
    """Build a tiny random-weight pipeline and save it (diffusers layout) to ``path``; returns ``path``."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    cls = StableDiffusionInpaintPipeline if kind == "inpaint" else StableDiffusionImg2ImgPipeline
    pipeline = cls(**tiny_components(kind, seed))
    path = Path(path)
    pipeline.save_pretrained(path)
    return path
