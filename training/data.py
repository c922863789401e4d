"""Load a split of an exported benchmark for training, refusing data the trainers cannot use."""

from __future__ import annotations

from typing import Any

from medgen.errors import MedgenError
from schemas.taxonomy import NUM_CANDIDATES

SFT_COLUMNS = ("images", "prompt", "completion")
GRPO_COLUMNS = ("images", "prompt", "answer")


def load_split(dataset: str | None, split: str, revision: str | None = None) -> Any:  # -> datasets.Dataset
    """One split of an export folder or a Hub dataset id (at ``revision``, e.g. a version tag)."""
    if not dataset:
        raise MedgenError(
            "no dataset: pass --dataset EXPORT_FOLDER or a Hub dataset id (or set it in the recipe)"
        )
    from medgen.export import load_export

    return load_export(dataset, split, revision)


def check_columns(dataset: Any, required: tuple[str, ...], name: str) -> None:
    """Refuse a dataset that lacks a column the trainer needs, or whose rows do not hold five images."""
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        raise MedgenError(
            f"dataset {name} lacks column(s) {', '.join(missing)} (has: {', '.join(dataset.column_names)}); "
            "export it with `medgen export`"
        )
    if len(dataset) == 0:
        raise MedgenError(f"dataset {name} has no rows in this split")
    row = dataset[0]
    placeholders = sum(1 for part in row["prompt"][0]["content"] if part.get("type") == "image")
    if len(row["images"]) != NUM_CANDIDATES + 1 or placeholders != len(row["images"]):
        raise MedgenError(
            f"dataset {name}: a row must hold {NUM_CANDIDATES + 1} images and one image placeholder per image "
            f"in its prompt; got {len(row['images'])} images and {placeholders} placeholders"
        )


def preload_images(dataset: Any, image_processor: Any) -> Any:  # -> datasets.Dataset
    """The split with every image decoded once and resized to the size ``image_processor`` gives it.

    The Qwen2-VL family resizes each image to a multiple of its patch grid within its pixel bounds
    (``smart_resize``); doing that once here makes the processor's own resize a no-op, so the model
    sees the same pixels, and a training step no longer decodes full-size PNGs. Kept in memory.
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = image_processor.patch_size * image_processor.merge_size
    low, high = image_processor.size["shortest_edge"], image_processor.size["longest_edge"]

    def resize(row: dict[str, Any]) -> dict[str, Any]:
        images = []
        for image in row["images"]:
            height, width = smart_resize(image.height, image.width, factor, low, high)
            images.append(
                image.convert("RGB").resize((width, height), resample=3)
            )  # bicubic, as the processor
        return {"images": images}

    return dataset.map(resize, keep_in_memory=True, desc="preloading images")


def _dimension_name(dataset: Any) -> Any:  # -> Callable[[dict], str]
    """A row's dimension as a name, whether the column is the export's ClassLabel or plain strings."""
    import datasets

    feature = dataset.features["dimension"]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    return lambda row: names[row["dimension"]] if names else row["dimension"]


def _undecoded(dataset: Any) -> Any:  # -> datasets.Dataset
    """The split with its images left as stored bytes: rows are rewritten (``map``) without decoding a picture;
    cast ``images`` back to ``dataset.features["images"]`` afterwards."""
    import datasets

    return dataset.cast_column("images", datasets.List(datasets.Image(decode=False)))


def with_answer_boxes(dataset: Any) -> Any:  # -> datasets.Dataset
    """The split in the answer variant with boxes: every dimension question's prompt asks for boxes
    (``schemas.prompts.BOX_INSTRUCTIONS``) and its reference completion names the answered candidates' regions;
    publishable questions stay as they are. Refused when the export has no regions."""
    if "regions" not in dataset.column_names:
        raise MedgenError(
            "answer_boxes needs an export with a regions column (push --regions, or --labels injected)"
        )
    regions = dataset.select_columns(["regions"])["regions"]
    if not any(box for row in regions for box in row):
        raise MedgenError("answer_boxes needs regions, and no row of this split has one")
    from schemas.prompts import answer_boxes, with_box_instruction
    from schemas.taxonomy import OVERALL, QUESTION_DIMENSIONS

    dimension_of = _dimension_name(dataset)

    def ask(row: dict[str, Any]) -> dict[str, Any]:
        dimension = dimension_of(row)
        if dimension == OVERALL or dimension not in QUESTION_DIMENSIONS:
            return {}
        changed: dict[str, Any] = {"prompt": with_box_instruction(row["prompt"])}
        if "completion" in row:
            turn = row["completion"][0]
            text = turn["content"][0]["text"] + answer_boxes(row["answer"], row["regions"])
            changed["completion"] = [{**turn, "content": [{**turn["content"][0], "text": text}]}]
        return changed

    asked = _undecoded(dataset).map(ask, desc="asking for boxes", keep_in_memory=True)
    return asked.cast_column("images", dataset.features["images"])


def shared_change(images: list[Any], rng: Any) -> list[Any]:
    """The five images with one random change in common: mirrored (half the time), and one brightness,
    contrast and saturation factor in [0.8, 1.2] and hue turn within 5 % of the circle."""
    from PIL import Image, ImageEnhance, ImageOps

    mirror = rng.random() < 0.5
    factors = [rng.uniform(0.8, 1.2) for _ in range(3)]
    turn = round(rng.uniform(-0.05, 0.05) * 255)
    changed = []
    for image in images:
        image = image.convert("RGB")
        if mirror:
            image = ImageOps.mirror(image)
        for enhancer, factor in zip(
            (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color), factors, strict=True
        ):
            image = enhancer(image).enhance(factor)
        if turn:
            h, s, v = image.convert("HSV").split()
            h = h.point(lambda x: (x + turn) % 256)
            image = Image.merge("HSV", (h, s, v)).convert("RGB")
        changed.append(image)
    return changed


def with_shared_changes(dataset: Any, seed: int) -> Any:  # -> datasets.Dataset
    """The split with ``shared_change`` applied to each row's images every time the row is read (seeded; the
    trainer reads rows in one process, so a run is repeatable). Nothing is stored."""
    import random

    rng = random.Random(f"{seed}/augment-images")

    def change(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {**batch, "images": [shared_change(images, rng) for images in batch["images"]]}

    return dataset.with_transform(change)


AUGMENTED_COLUMNS = ("images", "defects", "acceptable", "dimension")
"""What a row needs for ``with_candidate_orders`` to show its candidates in another order."""


def reordered(row: dict[str, Any], order: list[int], dimension: str) -> dict[str, Any]:
    """A row with candidates A-D shown in ``order`` (old index per new position): the images, labels, answer and
    reference reasoning follow them. The reasoning is the template one (an annotator's or teacher's text names
    letters, which would no longer hold)."""
    from schemas import CandidateLabel, answer_letters, format_answer
    from schemas.prompts import completion_messages, rationale_text

    labels = [
        CandidateLabel(defects=tuple(row["defects"][i]), acceptable=row["acceptable"][i]) for i in order
    ]
    answer = format_answer(answer_letters(labels, dimension))
    reasoning = rationale_text(labels, dimension, notes=False)
    changed = {
        "images": [row["images"][0], *(row["images"][1 + i] for i in order)],
        "defects": [row["defects"][i] for i in order],
        "acceptable": [row["acceptable"][i] for i in order],
        "answer": answer,
        "completion": completion_messages(reasoning, answer),
    }
    if "rationale" in row:
        changed["rationale"] = reasoning
    if "regions" in row:
        changed["regions"] = [row["regions"][i] for i in order]
    return changed


def with_candidate_orders(dataset: Any, orders: int, seed: int) -> Any:  # -> datasets.Dataset
    """Each question ``orders`` times: as exported, then with its candidates in ``orders - 1`` other seeded random
    orders (``reordered``), all shuffled together. Which letter is defective then says nothing about the source
    or the position: a model has to read the images. ``orders=1`` returns the split as it is. Images are moved,
    not decoded."""
    if orders <= 1:
        return dataset
    missing = [column for column in AUGMENTED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise MedgenError(f"candidate_orders needs the export's column(s) {', '.join(missing)}")
    import random

    import datasets

    dimension_of = _dimension_name(dataset)
    raw = _undecoded(dataset)
    copies = [raw]
    for k in range(1, orders):
        rng = random.Random(f"{seed}/candidate-orders/{k}")

        def shuffle(row: dict[str, Any], rng: random.Random = rng) -> dict[str, Any]:
            order = list(range(NUM_CANDIDATES))
            rng.shuffle(order)
            return reordered(row, order, dimension_of(row))

        copies.append(raw.map(shuffle, desc=f"candidate order {k + 1} of {orders}", keep_in_memory=True))
    joined = datasets.concatenate_datasets(copies).shuffle(seed=seed)
    return joined.cast_column("images", dataset.features["images"]).flatten_indices(keep_in_memory=True)
