"""The scale benchmark runs end to end on tiny sizes (the steps that need no Label Studio)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_times_the_chosen_steps_and_prints_the_ratios(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "benchmarks/scale.py",
        "--sources",
        "12",
        "24",
        "--steps",
        "sources add",
        "generate",
    ]
    command += ["--tmp", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    lines = done.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("step"))) :]
    rows = {line.split()[0]: line.split() for line in table[1:-1]}
    assert set(rows) == {"sources", "generate"}  # only the steps asked for are timed
    generate = [float(x) for x in rows["generate"][1:] if x != "|"]
    # ms + RSS per N, cost and RSS ratios, marginal ms, CPU ratio
    assert len(generate) == 8 and all(x > 0 for x in generate[:4]) and generate[-1] > 0
    # the steps before the last timed one ran; nothing after it (no Label Studio project)
    assert (
        "[24] counts: sources 24, candidates 96, sources_complete 24, generation_failures 0, ls_projects 0"
        in (done.stdout)
    )
    assert "bars (cost per source and peak RSS at most 1.3x the smallest N)" in done.stdout
    assert not list(tmp_path.iterdir())  # workspaces removed
