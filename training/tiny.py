"""A tiny random-weight Qwen2.5-VL with its processor, built offline: for tests, the demo and evaluation.

The architecture, chat template and special tokens are Qwen2.5-VL's, so every code path that runs on
``Qwen/Qwen2.5-VL-3B-Instruct`` (TRL's SFT/GRPO trainers, generation, evaluation) runs on it; only the
sizes are tiny (hidden 64, 2 layers, vision depth 2) and the tokenizer is a small BPE trained on the spot
from medgen's own prompt text. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from schemas.prompts import ANSWER_INSTRUCTIONS, question_text, rationale_text
from schemas.taxonomy import QUESTION_DIMENSIONS, TAXONOMY

# Qwen2.5-VL's special tokens, in its order, so the model config keeps the real token roles.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
FORMAT_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
VOCAB_SIZE = 1024  # an upper bound: medgen's prompt text yields about 900 tokens
# 56x56 pixels max: 4x4 patches of 14 px, merged 2x2 -> 4 tokens per image, 20 for the five images.
MAX_PIXELS = 56 * 56
MIN_PIXELS = 28 * 28


def _corpus() -> list[str]:
    """Text the tokenizer learns from: every question, the answer format and sample reasoning."""
    from schemas.models import CandidateLabel

    texts = [ANSWER_INSTRUCTIONS, "system\nYou are a helpful assistant.", "user\nassistant\n"]
    texts += ["Image 1 (original):", *(f"Image {letter}:" for letter in "ABCD")]
    texts += [f"(end of image {name})\n" for name in "1ABCD"]
    ok = CandidateLabel(acceptable=True)
    for dimension in QUESTION_DIMENSIONS:
        texts.append(question_text(dimension))
        tagged = [
            CandidateLabel(defects=(tag,), acceptable=False)
            for d in TAXONOMY.dimensions
            for tag in d.tag_ids()
        ]
        for i in range(0, len(tagged), 3):
            labels = [*tagged[i : i + 3], ok][:4]
            labels += [ok] * (4 - len(labels))
            texts.append(f"<think>{rationale_text(labels, dimension)}</think><answer>A,B,C</answer>")
    texts += [f"<answer>{a}</answer>" for a in ("A", "B", "C", "D", "A,C", "B,D", "A,B,C,D")]
    return texts


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """A byte-level BPE tokenizer with Qwen2.5-VL's special tokens and chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    # The answer format's four tags, one token each (as reasoning models have them): the format is then
    # four decisions, not a dozen byte pieces whose merges change with what precedes them.
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in FORMAT_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=qwen2_5_vl_chat_template,
        model_max_length=4096,
        padding_side="left",
    )


def build_processor():  # -> transformers.Qwen2_5_VLProcessor
    """Qwen2.5-VL's processor around the tiny tokenizer, with images capped at 56x56 pixels."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer = build_tokenizer()
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=tokenizer.chat_template,
    )


def build_tiny_vlm(
    output_dir: Path, seed: int = 0, hidden: int = 64, layers: int = 2, vision_depth: int = 2
) -> Path:
    """Save a tiny random-weight ``Qwen2_5_VLForConditionalGeneration`` and its processor in ``output_dir``.

    Loadable with ``Qwen2_5_VLForConditionalGeneration.from_pretrained(output_dir)`` and
    ``AutoProcessor.from_pretrained(output_dir)``; deterministic for a given ``seed``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    output_dir = Path(output_dir)
    processor = build_processor()
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    if hidden % 16 or hidden < 32 or layers < 1 or vision_depth < 2:
        raise ValueError(
            "hidden must be a multiple of 16 (at least 32), layers positive and vision_depth at least 2;"
            f" got {hidden}, {layers}, {vision_depth}"
        )
    heads = hidden // 16  # head_dim 16, so the mrope sections below stay (2, 3, 3)
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": max(1, heads // 2),
            "max_position_embeddings": 4096,
            "max_window_layers": layers,
            # mrope sections (temporal, height, width) sum to head_dim / 2 = 8
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [2, 3, 3],
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_heads": heads,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": list(range(1, vision_depth, 2)),
            "window_size": 112,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


if __name__ == "__main__":  # python -m training.tiny runs/tiny/model
    import sys

    print(build_tiny_vlm(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tiny/model")))
