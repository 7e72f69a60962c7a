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


def test_info_lists_every_variant_whatever_an_override_of_a_variant_key(capsys):
    argv = ["info", "--profile", "smoke", "--set", "model.neck.attention=suppress"]
    assert main([*argv, "--variant", "full", "--variant", "no_attention", "--variant", "cls_only"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]}
    assert listed == {"full", "no_attention", "cls_only"}


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


def test_cli_choices_come_from_the_registries():
    from fbifpn.cli import build_parser
    from fbifpn.data.faces import DETECTORS
    from fbifpn.data.sources import LAYOUTS
    from fbifpn.data.synthetic import SIZES

    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    prep = {a.dest: a.choices for a in subcommands["prep"]._actions}
    assert prep["layout"] == list(LAYOUTS) and prep["detector"] == list(DETECTORS)
    assert {a.dest: a.choices for a in subcommands["synth"]._actions}["size"] == list(SIZES)
    assert {a.dest: a.choices for a in subcommands["detect"]._actions}["detector"] == list(DETECTORS)


@pytest.mark.parametrize(
    ("layout", "flags", "said"),
    [
        (
            "celebdf",
            ["--methods", "Deepfakes"],
            "--methods is not for --layout celebdf (it takes --dataset, --train-list)",
        ),
        ("dfdc", ["--splits", "x"], "--splits is not for --layout dfdc (it takes --dataset)"),
        ("ffpp", ["--json", "x.json"], "--json is not for --layout ffpp"),
        ("deepfakebench", [], "needs its JSON index"),
    ],
)
def test_prep_refuses_the_options_a_layout_has_no_use_for(layout, flags, said, tmp_path, capsys):
    argv = ["prep", "--layout", layout, "--root", str(tmp_path), "--out", str(tmp_path / "out"), *flags]
    assert main(argv) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
