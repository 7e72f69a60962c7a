"""check-results: a rerun's tables against the committed ones (fbifpn/reproduce.py)."""

import pandas as pd
import pytest

from fbifpn import reproduce
from fbifpn.cli import main


def _tables(folder, auc=0.9, rows=2):
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {"test": ["a", "b"][:rows], "video_auc": [auc, 0.8][:rows], "checkpoint": [str(folder)] * rows}
    )
    frame.to_csv(folder / "03_ablations.csv", index=False)
    return folder


def test_identical_numbers_pass_and_paths_are_not_compared(tmp_path):
    committed, rerun = _tables(tmp_path / "results"), _tables(tmp_path / "runs")
    assert reproduce.check(committed, rerun, 0.0) == []


def test_a_moved_number_names_the_table_row_and_column(tmp_path):
    committed, rerun = _tables(tmp_path / "results"), _tables(tmp_path / "runs", auc=0.91)
    (line,) = reproduce.check(committed, rerun, 0.0)
    assert line.startswith("03_ablations.csv: row 0, video_auc: 0.9 committed, 0.91 rerun")
    assert reproduce.check(committed, rerun, 0.02) == []  # within the tolerance


def test_a_missing_or_reshaped_table_is_a_difference_and_no_tables_an_error(tmp_path):
    committed = _tables(tmp_path / "results")
    assert "not made by the rerun" in reproduce.check(committed, tmp_path / "nothing", 0.0)[0]
    assert "1 rows" in reproduce.check(committed, _tables(tmp_path / "short", rows=1), 0.0)[0]
    with pytest.raises(FileNotFoundError, match="no committed tables"):
        reproduce.check(tmp_path / "empty", tmp_path, 0.0)


def test_check_results_exits_1_on_a_difference_and_0_when_reproduced(tmp_path, monkeypatch, capsys):
    import fbifpn.paths as paths

    _tables(tmp_path / "results" / "demo")
    monkeypatch.setattr(paths, "project_root", lambda: tmp_path)
    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path / "runs"))
    _tables(tmp_path / "runs" / "demo", auc=0.5)
    assert main(["check-results", "--profile", "demo"]) == 1
    assert "1 differences beyond 0" in capsys.readouterr().out
    _tables(tmp_path / "runs" / "demo")
    assert main(["check-results", "--profile", "demo"]) == 0
    assert "reproduced within 0" in capsys.readouterr().out


def test_a_flipped_verdict_is_a_difference_and_paths_are_not(tmp_path):
    committed, rerun = tmp_path / "results", tmp_path / "runs"
    for folder, verdict, where in ((committed, "significant", "a"), (rerun, "not significant", "b")):
        folder.mkdir()
        pd.DataFrame({"verdict": [verdict], "checkpoint": [where], "p": [0.01]}).to_csv(
            folder / "03_paired.csv", index=False
        )
    (line,) = reproduce.check(committed, rerun, 0.0)
    assert "verdict: 'significant' committed, 'not significant' rerun" in line


def test_publish_copies_tables_and_scores_with_relative_paths_and_the_machine(tmp_path, monkeypatch):
    import json

    import fbifpn.paths as paths

    monkeypatch.setattr(paths, "project_root", lambda: tmp_path)
    runs = tmp_path / "runs" / "study"
    _tables(runs)
    (runs / "07_robustness_runs.csv").write_text("x\n1\n")  # the notebook's own working table: not published
    (runs / "scores").mkdir()
    (runs / "scores" / "03_ablations.csv.gz").write_bytes(b"\x1f\x8b scores")
    (runs / "scores" / "08_budget_curve.csv.gz").write_bytes(b"\x1f\x8b curve")
    results = tmp_path / "results" / "study"
    written = reproduce.publish(runs, results, {"profile": "study"}, notebooks=("03",))
    assert sorted(p.name for p in written) == ["03_ablations.csv", "03_ablations.csv.gz", "config.json"]
    assert str(tmp_path) not in (results / "03_ablations.csv").read_text()  # runs/study, not /tmp/...
    assert (results / "scores" / "03_ablations.csv.gz").read_bytes() == b"\x1f\x8b scores"
    machine = json.loads((results / "config.json").read_text())["machine"]
    assert {"cpu", "cpu_capability", "threads"} <= set(machine)
    assert reproduce.recorded_machine(results) == machine
