"""Counts of how the code reads, for the architecture bars anyone can rerun.

- functions over 80 lines in medgen/, annotation/, training/, schemas/ (bar: 0);
- modules that run SQL (``.execute(``, ``.executemany(``, ``.query(``, ``.rows_in(``) other than the catalog,
  a stage's ``tables.py``, Label Studio's database module and the export's scratch manifest (bar: 0);
- definitions of the fields of asking a model (endpoint, max_new_tokens, temperature...): ``InferenceConfig`` only (bar: 1 each);
- pairs of repeated blocks outside tests/ and benchmarks/, by the workplace's ``duplicates`` command when it is
  installed (bar: at most 14, half of the 29 counted before the step).

    .venv/bin/python benchmarks/architecture.py [--json]
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("medgen", "annotation", "training", "schemas")
MAX_LINES = 80
SQL_CALLS = re.compile(r"\.(execute|executemany|query|rows_in)\(")
SQL_HOMES = (
    "medgen/workspace/catalog.py",
    "annotation/ls_database.py",
    "medgen/export/manifest.py",
)
"""Modules besides each stage's ``tables.py`` that may run SQL: the catalog (migrations, sources and
candidates), Label Studio's own database, the export's scratch database of the changelog."""
CLIENT_FIELDS = ("endpoint", "max_new_tokens", "temperature", "concurrency", "max_retries", "timeout_s")
"""The fields of asking a model that ``InferenceConfig`` declares once. Fields that other stages declare for
other things of the same name are left out: a diffusers pipeline's ``model``/``dtype``/``device``/``batch_size``
(generation), the model a training run starts from and its image bound (TRL's training arguments)."""


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def long_functions() -> list[tuple[str, int]]:
    found = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_LINES:
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", length))
    return found


def sql_outside_homes() -> list[str]:
    found = []
    for path in sources():
        where = path.relative_to(ROOT).as_posix()
        if where in SQL_HOMES or path.name == "tables.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if SQL_CALLS.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{where}:{number}")
    return found


def client_field_definitions() -> dict[str, list[str]]:
    """Field name -> the pydantic/dataclass classes that declare it, among the client fields."""
    found: dict[str, list[str]] = {name: [] for name in CLIENT_FIELDS}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and item.target.id in found
                ):
                    found[item.target.id].append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def duplicate_pairs() -> int | None:
    """Repeated-block pairs outside tests/ and benchmarks/ (None: the ``duplicates`` command is not installed)."""
    command = shutil.which("duplicates")
    if command is None:
        return None
    output = subprocess.run(
        [command, "--most", "200", "--seconds", "120"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout
    rows = [line for line in output.splitlines() if re.match(r"^D\d+ ", line)]
    return sum(1 for row in rows if "tests/" not in row and "benchmarks/" not in row)


def main() -> None:
    counts = {
        "functions_over_80_lines": long_functions(),
        "sql_outside_table_modules": sql_outside_homes(),
        "client_field_definitions": client_field_definitions(),
        "duplicate_pairs": duplicate_pairs(),
    }
    if "--json" in sys.argv:
        print(json.dumps(counts, indent=2))
        return
    defined_twice = {
        name: where for name, where in counts["client_field_definitions"].items() if len(where) != 1
    }
    pairs = counts["duplicate_pairs"]
    print(
        f"architecture: functions over {MAX_LINES} lines {len(counts['functions_over_80_lines'])} (bar 0); "
        f"SQL outside table modules {len(counts['sql_outside_table_modules'])} (bar 0); "
        f"model-client fields not defined exactly once {len(defined_twice)} (bar 0); "
        f"duplicate pairs outside tests and benchmarks {'n/a' if pairs is None else pairs} (bar 14)"
    )
    for where, length in counts["functions_over_80_lines"]:
        print(f"  long: {where} ({length} lines)")
    for where in counts["sql_outside_table_modules"]:
        print(f"  SQL: {where}")
    for name, where in defined_twice.items():
        print(f"  field {name}: {', '.join(where) or 'nowhere'}")


if __name__ == "__main__":
    main()
