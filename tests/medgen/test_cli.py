import json

from medgen.cli import app


def test_help_lists_the_stages(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "status", "sources", "schema"):
        assert command in result.output


def test_init_add_list_status(runner, tmp_path, photos_dir):
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    result = runner.invoke(app, ["sources", "add", str(photos_dir), "-w", str(ws)])
    assert result.exit_code == 0, result.output
    assert "added 6, duplicate 0, rejected 0" in result.output
    result = runner.invoke(app, ["status", "-w", str(ws), "--json"])
    counts = json.loads(result.output)
    assert counts["sources"] == 6 and counts["candidates"] == 0
    result = runner.invoke(app, ["sources", "list", "-w", str(ws), "--json"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 6 and all(row["candidates"] == 0 for row in rows)


def test_user_errors_are_one_line_without_traceback(runner, tmp_path):
    result = runner.invoke(app, ["status", "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not a medgen workspace" in result.output
    assert "Traceback" not in result.output


def test_schema_command(runner, tmp_path):
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["title"] == "BenchmarkSample"


def test_sources_add_exits_1_when_a_file_is_rejected_but_adds_the_rest(runner, tmp_path, photos_dir):
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    (photos_dir / "broken.png").write_bytes(b"not a png")
    result = runner.invoke(app, ["sources", "add", str(photos_dir), "-w", str(ws)])
    assert result.exit_code == 1
    assert "broken.png: not an image PIL can read" in result.output
    assert "added 6, duplicate 0, rejected 1" in result.output


def test_demo_options_are_checked_with_the_flag_names(runner, tmp_path):
    result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--sources", "2"])
    assert result.exit_code == 1 and "--sources: Input should be greater than or equal to 4" in result.output
