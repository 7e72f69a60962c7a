import subprocess
import sys

import pytest

from fbifpn.cli import main


def test_info_prints_parts_per_variant(capsys):
    assert main(["info", "--profile", "smoke", "--variant", "full", "--variant", "backbone_only"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(("full", "backbone_only"))]
    parts = [(r[0], r[1]) for r in rows]
    assert parts == [
        ("full", "backbone"),
        ("full", "neck"),
        ("full", "heads"),
        ("full", "total"),
        ("backbone_only", "backbone"),
        ("backbone_only", "heads"),
        ("backbone_only", "total"),
    ]
    full = {r[1]: (float(r[2]), float(r[3])) for r in rows if r[0] == "full"}
    assert full["total"][0] == pytest.approx(sum(full[p][0] for p in ("backbone", "neck", "heads")), abs=2e-3)
    assert all(macs > 0 for _, macs in full.values())


def test_bad_input_exits_non_zero_with_the_key(capsys):
    assert main(["info", "--profile", "smoke", "--set", "model.neck.widht=3"]) == 2
    assert "model.neck.widht" in capsys.readouterr().err
    assert main(["info", "--profile", "nope"]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert main(["info", "--profile", "smoke", "--variant", "fancy"]) == 2
    assert "fancy" in capsys.readouterr().err


def test_overfit_command(capsys):
    assert main(["overfit", "--profile", "smoke", "--steps", "30"]) == 0
    assert "fall" in capsys.readouterr().out
    assert main(["overfit", "--profile", "smoke", "--steps", "2", "--min-drop", "0.99"]) == 1


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "fbifpn", "--help"], capture_output=True, text=True, check=True
    )
    assert "info" in result.stdout and "overfit" in result.stdout


def test_synth_command(tmp_path, capsys):
    assert main(["synth", "--size", "smoke", "--out", str(tmp_path / "b"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "synthetic benchmark (size smoke, seed 0)" in out and "videos" in out
    assert (tmp_path / "b" / "benchmark.json").is_file()
    with pytest.raises(SystemExit):
        main(["synth", "--size", "huge"])
