"""Every notebook runs on the smoke profile: papermill injects the parameters into a temporary
copy (nbval cannot), then `pytest --nbval-lax` executes and validates it. Outputs and figures go to a
temporary folder, never into the tracked tree."""

import os
import subprocess
import sys

import pytest

from fbifpn.notebooks import notebook_list, prepare, run

pytestmark = pytest.mark.slow


def test_every_notebook_passes_nbval_on_the_smoke_profile(tmp_path):
    params = {"profile": "smoke", "run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures")}
    copies = [prepare(nb, tmp_path / "nb" / nb.name, params) for nb in notebook_list()]
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
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout
    assert (tmp_path / "figures" / "02_training_curves.png").is_file()
    assert (tmp_path / "figures" / "02_training_curves.json").is_file()  # the config that made it


def test_unknown_parameters_fail_with_their_name(tmp_path):
    notebook = notebook_list(["00"])[0]
    with pytest.raises(ValueError, match="'profil'"):
        prepare(notebook, tmp_path / "x.ipynb", {"profil": "smoke"})
    with pytest.raises(ValueError, match="'sed'"):
        run("smoke", only=["00"], out=tmp_path, figures=tmp_path, extra={"sed": 1})
    with pytest.raises(ValueError, match="--only 09"):
        notebook_list(["09"])


def test_a_misspelt_override_stops_the_run_naming_the_key(tmp_path):
    with pytest.raises(RuntimeError, match=r"model\.neck\.widht"):
        run("smoke", only=["00"], overrides=["model.neck.widht=3"], out=tmp_path, figures=tmp_path)
    assert (tmp_path / "notebooks" / "00_quickstart.ipynb").is_file()  # the partial output is kept
