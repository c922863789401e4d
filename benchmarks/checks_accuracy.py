"""How well `medgen check` works: precision and recall per tag, and false alarms on untouched candidates.

The evaluation set is ``benchmarks/checks_evalset.py``: perturbations of our own (not the synthetic backend's
injections), each candidate with its known tag and severity, a third of them untouched. Items alternate
between two halves: every check's threshold is calibrated on the first half (the threshold that maximises
its tag's F1 while at most ``--max-false-alarm`` of the untouched candidates cross it), and everything is
reported on the second half, with the shipped defaults (``CheckConfig``) and with the calibrated values.

    PYTHONPATH=. .venv/bin/python benchmarks/checks_accuracy.py [--items 600] [--seed 0] [--no-ocr]
        [--output checks_accuracy.json]

Bar (issue 33): on the held-out half, every tag the checks claim reaches precision and recall of at least
0.8, at a false-alarm rate on untouched candidates (any finding) of at most 5 %.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.checks_evalset import TAGS, Item, build  # noqa: E402
from medgen.checks.config import CheckConfig  # noqa: E402
from medgen.checks.findings import JUDGED_TAGS, NOT_JUDGED, RULES, findings, missing, scale_change  # noqa: E402
from medgen.checks.measure import measure, prepare_reference  # noqa: E402


def measure_items(items: list[Item], config: CheckConfig, workers: int = 2) -> list[dict[str, float | None]]:
    """Every item's measured values (the scale judged against 1: the recipes keep the product's pixel size)."""

    def one(item: Item) -> dict[str, float | None]:
        reference = prepare_reference(item.original, item.mask, config)
        values = measure(reference, item.candidate, config).values
        values["scale_change"] = scale_change(values["scale"], 1.0)
        return values

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, items))


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """95 % Wilson score interval of k successes in n."""
    if n == 0:
        return None, None
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3)


def calibrate(
    items: list[Item], values: list[dict[str, float | None]], config: CheckConfig, max_false_alarm: float
) -> dict[str, float]:
    """Per check: the threshold maximising its tag's F1 on these items, with few false alarms on untouched ones.

    The product-missing checks first: where they report the product missing, nothing else is judged, so the
    other checks are calibrated on the candidates left.
    """
    first = [rule for rule in RULES if rule.tag == "appearance_other"]
    settings = _thresholds(first, items, values, max_false_alarm)
    found = config.model_copy(update=settings)
    kept = [(item, v) for item, v in zip(items, values, strict=True) if not missing(v, found)]
    rest = [rule for rule in RULES if rule.tag != "appearance_other"]
    settings.update(_thresholds(rest, [i for i, _ in kept], [v for _, v in kept], max_false_alarm))
    return settings


def _thresholds(
    rules: list[Any], items: list[Item], values: list[dict[str, float | None]], max_false_alarm: float
) -> dict[str, float]:
    settings: dict[str, float] = {}
    for rule in rules:
        column = np.array([np.nan if v.get(rule.value) is None else float(v[rule.value]) for v in values])
        sign = 1.0 if rule.above else -1.0  # flag when sign * value > sign * threshold
        scored = sign * column
        positive = np.array([item.tag == rule.tag for item in items])
        clean = np.array([item.tag is None for item in items])
        finite = np.isfinite(scored)
        best: tuple[float, float] | None = None
        for cut in np.unique(scored[finite]):
            flagged = finite & (scored > cut)
            if clean.sum() and (flagged & clean).sum() / clean.sum() > max_false_alarm:
                continue
            tp = (flagged & positive).sum()
            f1 = 2 * tp / max(1, flagged.sum() + positive.sum())
            if best is None or f1 > best[0] + 1e-9:
                best = (f1, float(cut))
        if best is not None:
            above = scored[finite & (scored > best[1])]
            upper = float(above.min()) if len(above) else best[1]
            threshold = sign * (best[1] + upper) / 2  # midway to the next value up: not on a sample
            settings[rule.setting] = round(threshold, 4)
    return settings


def report(items: list[Item], values: list[dict[str, float | None]], config: CheckConfig) -> dict[str, Any]:
    """Precision and recall per judged tag, and the untouched candidates' false-alarm rate (any finding)."""
    found = [{f.tag for f in findings(v, config)} for v in values]
    tags: dict[str, Any] = {}
    for tag in JUDGED_TAGS:
        truth = [item.tag == tag for item in items]
        flagged = [tag in f for f in found]
        tp = sum(t and f for t, f in zip(truth, flagged, strict=True))
        n_flagged, n_true = sum(flagged), sum(truth)
        tags[tag] = {
            "n": n_true,
            "flagged": n_flagged,
            "precision": round(tp / n_flagged, 3) if n_flagged else None,
            "precision_ci": wilson(tp, n_flagged),
            "recall": round(tp / n_true, 3) if n_true else None,
            "recall_ci": wilson(tp, n_true),
        }
    clean = [f for f, item in zip(found, items, strict=True) if item.tag is None]
    alarms = sum(bool(f) for f in clean)
    by_severity = {}
    for low, high in ((0.3, 0.55), (0.55, 0.8), (0.8, 1.01)):
        chosen = [
            (item, f)
            for item, f in zip(items, found, strict=True)
            if item.tag and low <= item.severity < high
        ]
        hits = sum(item.tag in f for item, f in chosen)
        by_severity[f"{low:.2f}-{min(high, 1):.2f}"] = {
            "n": len(chosen),
            "recall": round(hits / max(1, len(chosen)), 3),
        }
    return {
        "tags": tags,
        "false_alarm": {
            "untouched": len(clean),
            "with_a_finding": alarms,
            "rate": round(alarms / max(1, len(clean)), 3),
            "ci": wilson(alarms, len(clean)),
        },
        "recall_by_severity": by_severity,
        "missing_reported": sum(missing(v, config) for v in values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600, help="evaluation candidates, both halves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ocr", action="store_true", help="read the printed text too (slow: ~1 candidate/s)")
    parser.add_argument("--max-false-alarm", type=float, default=0.005, help="per check, when calibrating")
    parser.add_argument("--output", type=Path, help="write the results here as JSON")
    args = parser.parse_args()

    started = time.perf_counter()
    items = build(args.items, seed=args.seed)
    shipped = CheckConfig(ocr=args.ocr)
    values = measure_items(items, shipped)
    measured_s = time.perf_counter() - started
    calibration, held_out = slice(0, None, 2), slice(1, None, 2)
    settings = calibrate(items[calibration], values[calibration], shipped, args.max_false_alarm)
    calibrated = shipped.model_copy(update=settings)
    results = {
        "items": args.items,
        "seed": args.seed,
        "ocr": args.ocr,
        "calibrated_settings": settings,
        "shipped_settings": {k: getattr(shipped, k) for k in settings},
        "held_out_shipped": report(items[held_out], values[held_out], shipped),
        "held_out_calibrated": report(items[held_out], values[held_out], calibrated),
        "not_judged": NOT_JUDGED,
        "perturbed_tags": list(TAGS),
        "seconds": round(time.perf_counter() - started, 1),
        "measure_seconds": round(measured_s, 1),
    }
    print_table(results)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written: {args.output}")


def print_table(results: dict[str, Any]) -> None:
    for name in ("held_out_shipped", "held_out_calibrated"):
        part = results[name]
        print(
            f"\n{name.replace('_', ' ')} ({results['items'] // 2} candidates; OCR {'on' if results['ocr'] else 'off'})"
        )
        print(
            f"{'tag':20s} {'n':>4s} {'flagged':>7s} {'precision':>10s} {'95 % CI':>14s} {'recall':>7s} {'95 % CI':>14s}"
        )
        for tag, row in part["tags"].items():
            p, r = row["precision"], row["recall"]
            print(
                f"{tag:20s} {row['n']:4d} {row['flagged']:7d} {'-' if p is None else f'{p:.3f}':>10s} "
                f"{str(row['precision_ci']):>14s} {'-' if r is None else f'{r:.3f}':>7s} {str(row['recall_ci']):>14s}"
            )
        alarm = part["false_alarm"]
        print(
            f"untouched with any finding: {alarm['with_a_finding']}/{alarm['untouched']} = {alarm['rate']:.3f} "
            f"{alarm['ci']}; recall by severity: {part['recall_by_severity']}"
        )
    print("\ncalibrated on the other half:", results["calibrated_settings"])
    print(f"{results['seconds']} s ({results['measure_seconds']} s measuring)")


if __name__ == "__main__":
    main()
