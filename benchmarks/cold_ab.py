"""A/B on a cold disk: `medgen export` or `medgen generate` with one of medgen's disk measures off and on.

Switches (``--switch``):

- ``read-ahead`` (``medgen.files.read_ahead``): the export reads five image files per source, the
  generation two (photo and mask). On this machine's virtual disk a cold read takes ~6-10 ms one at a
  time, while several in flight are served about as fast each; ``read_ahead`` asks for the next 64
  sources' files from 8 threads while one source is worked on. Off: one read at a time.
- ``deferred-flush`` (generate only): the run's candidate files are written without a flush each and
  made durable with one ``syncfs`` when the run's shard is done (``ImageStore.put_bytes(durable=False)``).
  Off: one ``fsync`` per candidate file, as generation did before.

Each run is a process timed by ``scale.run`` from a cold page cache (``scale.evict``), in alternating order
(off, on, on, off...); it prints the wall time, the CPU time and the ratio. The workspace should be too
large for the host's cache (at 1,500 sources of 128 px the reads come from it even after the guest's cache
is dropped).

Export: every run exports the whole workspace (written, then removed: a 50k-source export of 128 px
candidates is ~7 GB). Make the workspace with

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --sources 50000 --no-annotation --steps generate --keep
    PYTHONPATH=. .venv/bin/python benchmarks/cold_ab.py /tmp/medgen-scale-50000-XXXX/ws [--rounds 1]

Generate: every run makes the candidates of the next ``--limit`` sources that have none (synthetic
backend, 128 px as in ``scale.py``), so the workspace needs ``2 x rounds x limit`` sources without
candidates: ``medgen init WS && medgen sources add PHOTOS -w WS`` (the photos ``scale.py --keep`` keeps), then

    PYTHONPATH=. .venv/bin/python benchmarks/cold_ab.py WS --stage generate --switch deferred-flush --limit 10000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from benchmarks.scale import run

# argv: stage, switch, on|off, workspace, export version or generation limit
STEP = """
import sys
from medgen.cli import app
from medgen.workspace.store import ImageStore
stage, switch, mode, workspace, arg = sys.argv[1:6]
if stage == "export":
    import medgen.export.dataset as module
    command = ["export", "-w", workspace, "--version", arg, "--labels", "injected", "--min-annotators", "1",
               "--simulated-annotators"]
else:
    import medgen.generation.generate as module
    command = ["generate", "-w", workspace, "--backend", "synthetic", "--resolution", "128", "--limit", arg]
if mode == "off" and switch == "read-ahead":
    module.read_ahead = lambda items, paths, **_: iter(items)
if mode == "off" and switch == "deferred-flush":
    put_bytes = ImageStore.put_bytes
    ImageStore.put_bytes = lambda self, data, ext="png", durable=True: put_bytes(self, data, ext, True)
sys.argv = ["medgen", *command]
app()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--stage", choices=("export", "generate"), default="export")
    parser.add_argument("--switch", choices=("read-ahead", "deferred-flush"), default="read-ahead")
    parser.add_argument("--rounds", type=int, default=1, help="Pairs of runs (off then on, on then off...).")
    parser.add_argument("--limit", type=int, default=10_000, help="generate: sources per run.")
    args = parser.parse_args()
    if args.switch == "deferred-flush" and args.stage != "generate":
        parser.error("--switch deferred-flush is generation's (--stage generate)")
    from medgen.workspace import open_workspace

    with open_workspace(args.workspace) as ws:
        counts = ws.counts()
    if args.stage == "export":
        sources = counts["sources"]
    else:
        sources = args.limit
        missing = counts["sources"] - counts["sources_complete"]
        if missing < 2 * args.rounds * args.limit:
            raise SystemExit(
                f"{missing} sources lack candidates; {2 * args.rounds} runs of {args.limit} need more"
            )
    env = {**os.environ, "COLUMNS": "120"}
    times: dict[str, list[float]] = {"off": [], "on": []}
    for round_ in range(args.rounds):
        for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            version = f"{args.switch}-{mode}-{round_}"
            arg = version if args.stage == "export" else str(args.limit)
            command = [sys.executable, "-c", STEP, args.stage, args.switch, mode, str(args.workspace), arg]
            step = run(version, command, env, args.workspace)
            times[mode].append(step.seconds)
            print(
                f"{args.stage} {args.switch} {mode:<3}: {step.seconds:7.1f} s  {1000 * step.seconds / sources:6.2f} "
                f"ms/source  CPU {1000 * step.cpu_seconds / sources:5.2f} ms/source  {step.rss_mb:4.0f} MB",
                flush=True,
            )
            shutil.rmtree(args.workspace / "exports" / version, ignore_errors=True)
    print(
        f"{sources} sources per run: {args.stage} wall time with {args.switch} / without: "
        f"{sum(times['on']) / sum(times['off']):.2f}"
    )


if __name__ == "__main__":
    main()
