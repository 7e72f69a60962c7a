"""Every notebook runs on the smoke profile: papermill injects the parameters into a temporary
copy (nbval cannot), then `pytest --nbval-lax` executes and validates it. Outputs and figures go to a
temporary folder, never into the tracked tree."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import fbifpn.notebooks as notebooks_module
from fbifpn.config import ConfigError, load_config
from fbifpn.experiments import FIGURES_ONLY
from fbifpn.notebooks import BATCH, budget_of, notebook_list, prepare, run

pytestmark = pytest.mark.slow


# Beside the copies: records what each cell wrote to stderr (nbval keeps a cell's outputs in
# `test_outputs`, and compares none of them in lax mode).
STDERR_RECORDER = """
import json, os

def pytest_runtest_teardown(item):
    outs = getattr(item, "test_outputs", None)
    text = "".join(o["text"] for o in outs or [] if o.get("output_type") == "stream" and o.get("name") == "stderr")
    with open(os.environ["FBIFPN_TEST_STDERR"], "a") as f:
        f.write(json.dumps({"cell": item.name, "seen": outs is not None, "text": text}) + "\\n")
"""
PROGRESS_BAR = re.compile(r"^[^|]*\d+%\|[^|]*\|.*$")  # tqdm: "prep:  40%|####      | 2/5 [00:01<...]"


def stderr_besides_progress_bars(text: str) -> list[str]:
    pieces = (p.strip() for line in text.split("\n") for p in line.split("\r"))
    return [p for p in pieces if p and not PROGRESS_BAR.match(p)]


def test_every_notebook_passes_nbval_on_the_smoke_profile(tmp_path):
    params = {"profile": "smoke", "run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures")}
    copies = [prepare(nb, tmp_path / "nb" / nb.name, params) for nb in notebook_list()]
    (tmp_path / "nb" / "conftest.py").write_text(STDERR_RECORDER)
    stderr_log = tmp_path / "stderr.jsonl"
    assert [c.name[:2] for c in copies] == sorted(c.name[:2] for c in copies)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={tmp_path}",
            *map(str, copies),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"HF_HUB_OFFLINE": "1", BATCH: "1", "FBIFPN_TEST_STDERR": str(stderr_log)},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    # A reader of the executed notebooks sees no red box for an expected event: only progress bars.
    cells = sum(c["cell_type"] == "code" for copy in copies for c in json.loads(copy.read_text())["cells"])
    assert f"{cells} passed" in result.stdout  # nbval: one test per code cell
    written = [json.loads(line) for line in stderr_log.read_text().splitlines()]
    assert len(written) == cells and all(w["seen"] for w in written)  # the recorder saw every cell
    unexpected = [(w["cell"], line) for w in written for line in stderr_besides_progress_bars(w["text"])]
    assert not unexpected, unexpected[:10]
    assert len(copies) == 9
    figures = tmp_path / "figures"
    for name in (
        "00_quickstart_gradcam",
        "01_crops_and_masks",
        "02_training_curves",
        "03_ablations",
        "03_level_weights",
        "04_roc",
        "04_learning_curves",
        "05_gradcam_grid",
        "06_explorer_snapshot",
        "07_robustness",
        "07_perturbations",
        "07_reliability",
        "08_budget_curve",
    ):
        assert (figures / f"{name}.png").is_file() and (figures / f"{name}.pdf").is_file(), name
        assert "config" in json.loads((figures / f"{name}.json").read_text())  # the config that made it
    run_dir = tmp_path / "run"
    table = (run_dir / "03_ablations.md").read_text()
    assert table.startswith("*train data: synth-ff c23 (synthetic") and "| backbone_only |" in table
    deltas = (run_dir / "03_paired.md").read_text()  # every variant against full, on the same videos
    assert "ΔAUC vs full" in deltas and "| backbone_only |" in deltas and "| full |" not in deltas
    central = (run_dir / "04_full_vs_backbone.md").read_text()  # the paper's claim, per test set
    assert "ΔAUC vs backbone_only" in central and central.count("| full | synth-") == 3
    assert (run_dir / "04_cross_dataset.md").read_text().count("| synth-") == 3
    assert (run_dir / "04_cross_manipulation.csv").is_file() and (
        run_dir / "04_cross_compression.csv"
    ).is_file()
    assert (run_dir / "05_localisation.csv").is_file()
    protocols = pd.read_csv(run_dir / "04_protocols.csv")  # 02's run, the leave-one-out run, SBI
    assert list(protocols["held out"]) == ["none", "NeuralTextures", "all"]
    assert protocols.loc[2, "protocol"] == "SBI only" and protocols.loc[2, "steps"] == 4
    assert "| SBI only | all | 4 |" in (run_dir / "04_protocols.md").read_text()
    goals = (run_dir / "04_goals.md").read_text()
    assert "goal >= 0.99" in goals and "SBI only (4 steps" in goals
    assert "full - backbone_only on synth-cdf" in goals and "full - backbone_only on synth-dfdc" in goals
    robust = pd.read_csv(run_dir / "07_robustness_runs.csv")  # clean + 7 types x levels 1, 5, both models
    assert len(robust) == 2 * (1 + 7 * 2) and set(robust.model) == {"full", "backbone_only"}
    paired = (run_dir / "07_robustness.md").read_text()
    assert "| JPEG compression | 1,5 |" in paired and "| all | 14 conditions |" in paired
    calibration = pd.read_csv(run_dir / "07_calibration.csv")  # val, then notebook 04's four test sets
    assert list(calibration["set"]) == ["val", "synth-ff", "synth-cdf", "synth-dfdc", "synth-ff-c40"]
    # Platt and isotonic are fitted on val's videos: there, neither may be worse than the raw scores
    val = calibration.iloc[0]
    assert (
        val["video_nll_platt"] <= val["video_nll_raw"] and val["video_ece_isotonic"] <= val["video_ece_raw"]
    )
    curve = pd.read_csv(run_dir / "08_budget_curve.csv")  # smoke: budgets 2 and 4, one seed
    assert set(curve["steps"]) == {2, 4} and set(curve["variant"]) == {"backbone_only"}
    assert (run_dir / "scores" / "08_budget_curve.csv.gz").is_file()
    weights = pd.read_csv(run_dir / "08_level_weights.csv")
    assert (weights["bound_low"] <= weights["min"]).all() and (weights["max"] <= weights["bound_high"]).all()


def test_unknown_parameters_fail_with_their_name(tmp_path):
    notebook = notebook_list(["00"])[0]
    with pytest.raises(ValueError, match="'profil'"):
        prepare(notebook, tmp_path / "x.ipynb", {"profil": "smoke"})
    with pytest.raises(ValueError, match="'sed'"):
        run("smoke", only=["00"], out=tmp_path, figures=tmp_path, extra={"sed": 1})
    with pytest.raises(ValueError, match="--only 09"):
        notebook_list(["09"])


def test_every_notebook_has_a_budget_and_one_without_stops_the_run_first(tmp_path, monkeypatch):
    cfg = load_config("demo")
    assert sum(budget_of(cfg, nb) for nb in notebook_list()) == 750  # the demo's 15 minutes, less generation
    extra = tmp_path / "09_extra.ipynb"
    with pytest.raises(ValueError, match=r"09_extra\.ipynb: no time budget field 'extra'"):
        budget_of(cfg, extra)
    monkeypatch.setattr(notebooks_module, "notebook_list", lambda only=None: [*notebook_list(["00"]), extra])
    with pytest.raises(ValueError, match="no time budget field"):
        run("smoke", out=tmp_path / "out", figures=tmp_path / "figures")
    assert not (tmp_path / "out" / "notebooks").exists()  # refused before notebook 00 ran


def test_a_misspelt_override_stops_the_run_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.neck\.widht"):
        run("smoke", only=["00"], overrides=["model.neck.widht=3"], out=tmp_path, figures=tmp_path)
    assert not (tmp_path / "notebooks").exists()  # checked before any notebook starts
    notebook = notebook_list(["00"])[0]
    copy = prepare(notebook, tmp_path / "x.ipynb", {"profile": "smoke", "overrides": {"model.neck.widht": 3}})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(copy),
            str(tmp_path / "out.ipynb"),
            "--cwd",
            str(notebook.parent),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert result.returncode != 0 and "model.neck.widht" in result.stderr  # the notebook alone says it too


@pytest.mark.parametrize("number", ["03", "04", "05", "06"])
def test_a_notebook_without_its_inputs_names_the_notebook_to_run_first(tmp_path, number):
    with pytest.raises(RuntimeError, match=r"run notebooks/02_train\.ipynb first"):
        run("smoke", only=[number], out=tmp_path, figures=tmp_path / "figures")
    assert list((tmp_path / "notebooks").glob(f"{number}_*.ipynb"))  # the partial output is kept


def test_figures_only_fails_instead_of_training(tmp_path):
    with pytest.raises(RuntimeError, match=r"figures only.*02_train"):
        run("smoke", only=["02"], out=tmp_path, figures=tmp_path / "figures", figures_only=True)
    assert not (tmp_path / "train" / "last.pt").exists()
    assert FIGURES_ONLY not in os.environ and BATCH not in os.environ  # set for the kernels only


def test_headlines_read_the_tables_a_run_wrote(tmp_path):
    from fbifpn.notebooks import headlines

    assert headlines(tmp_path) == []  # nothing run yet: nothing claimed
    pd.DataFrame(
        {
            "protocol": ["dataset fakes", "dataset fakes without FaceSwap", "SBI only"],
            "held out": ["none", "FaceSwap", "all"],
            "steps": [45, 45, 45],
            "chosen step": [30, 45, 45],
            "plateau step": [30, 30, 45],
            "Deepfakes": [0.9, 0.8, 0.7],
            "synth-ff": [0.95, 0.85, 0.75],
            "synth-ff 95 % CI": ["[0.9, 1.0]", "[0.8, 0.9]", "[0.7, 0.8]"],
            "synth-cdf": [0.96, float("nan"), 0.66],
            "run": ["a", "b", "c"],
        }
    ).to_csv(tmp_path / "04_protocols.csv", index=False)
    lines = headlines(tmp_path)
    assert lines[0].startswith("training protocols")
    assert lines[1].split() == [
        "dataset",
        "fakes",
        "45",
        "steps:",
        "synth-ff",
        "0.950,",
        "synth-cdf",
        "0.960",
    ]
    assert lines[2].endswith("45 steps: synth-ff 0.850")  # the leave-one-out run: in-domain only
    assert lines[3].endswith("synth-ff 0.750, synth-cdf 0.660")
