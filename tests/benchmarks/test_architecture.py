"""The architecture counts hold: no function over 80 lines, SQL only in table modules, the fields of asking a
model declared once (``benchmarks/architecture.py``, which also counts repeated blocks where it can)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_counted_bars_hold() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/architecture.py", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = json.loads(result.stdout)
    assert counts["functions_over_80_lines"] == []
    assert counts["sql_outside_table_modules"] == []
    assert all(len(where) == 1 for where in counts["client_field_definitions"].values()), counts[
        "client_field_definitions"
    ]
    assert counts["duplicate_pairs"] is None or counts["duplicate_pairs"] <= 14


def test_the_script_finds_what_it_counts(tmp_path: Path, monkeypatch) -> None:
    """A counter that cannot fail is no bar: a long function and stray SQL in a copy of a package are found."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import architecture
    finally:
        sys.path.pop(0)
    package = tmp_path / "medgen"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    (package / "long.py").write_text(
        f"def long():\n{body}\n\n\ndef sql(conn):\n    conn.execute('SELECT 1')\n"
    )
    monkeypatch.setattr(architecture, "ROOT", tmp_path)
    monkeypatch.setattr(architecture, "PACKAGES", ("medgen",))
    assert architecture.long_functions() == [("medgen/long.py:1 long", 91)]
    assert architecture.sql_outside_homes() == ["medgen/long.py:95"]
