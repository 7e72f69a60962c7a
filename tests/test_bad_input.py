"""Bad input over the command line: every expected failure is one message naming the file or key and
the reason, with exit status 2 (1 where a batch ran and scored nothing); nothing is lost."""

import json
import shutil

import pandas as pd
import pytest
import torch

from fbifpn import build_model, load_config
from fbifpn.cli import main
from fbifpn.data.cache import prepared_manifest
from fbifpn.data.prep import PrepOptions
from fbifpn.data.sources import ffpp
from fbifpn.engine import checkpoint as ckpt


def _save(path, variant="full"):
    cfg = load_config("smoke", [f"model.variant={variant}"])
    model = build_model(cfg, pretrained=False)
    ckpt.save(path, model=model.state_dict(), config=cfg.to_dict(), threshold=0.5, best_epoch=0)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, smoke_tree):
    """Every bad (and one good) input the table names, made once."""
    d = tmp_path_factory.mktemp("bad")
    f = {"d": d, "good": _save(d / "good.pt"), "bare": _save(d / "bare.pt", "backbone_only")}
    f["manifest"] = prepared_manifest(load_config("smoke"), progress=False)
    f["ff"] = smoke_tree / "synth-ff"
    (d / "a_file").write_text("not a folder")
    f["under_file"] = d / "a_file" / "sub"  # mkdir fails there (root ignores permission bits)
    (d / "zero.pt").write_bytes(b"")
    torch.save(build_model(load_config("smoke"), pretrained=False).state_dict(), d / "state_dict.pt")
    (d / "not_manifest.csv").write_text("a,b\n1,2\n")
    (d / "tab.yaml").write_text("model:\n\tneck:\n    width: 8\n")
    (d / "syntax.yaml").write_text("model: [1, 2\n")
    dfdc = d / "dfdc" / "dfdc_train_part_0"
    dfdc.mkdir(parents=True)
    (dfdc / "metadata.json").write_text(json.dumps(["a.mp4", "b.mp4"]))
    f["dfdc"] = d / "dfdc"
    (d / "empty_folder").mkdir()
    (d / "binary.yaml").write_bytes(bytes(range(256)))
    (d / "folder.yaml").mkdir()
    f["manifests"] = _bad_manifests(d, f["manifest"])
    for name, change in {
        "foreign": {"config": {"lr": 0.1, "arch": "resnet"}},
        "thr_text": {"threshold": "high"},
        "thr_nan": {"threshold": float("nan")},
        "cfg_text": {"config": "smoke"},
    }.items():
        legacy = torch.load(f["good"], weights_only=True) | change
        legacy.pop("digest")  # from before digests, so nothing but the fields themselves can refuse it
        torch.save(legacy, d / f"legacy_{name}.pt")
    f["photo"] = smoke_tree / "synth-ff/original_sequences/youtube/c23/videos/000.mp4"
    shutil.copy(smoke_tree / "synth-ff/original_sequences/youtube/c23/videos/000.mp4", d / "copy.png")
    return f


def _bad_manifests(d, prep_folder):
    """Copies of the smoke manifest (crop paths made absolute) with one thing wrong each."""
    from fbifpn.data.manifest import load_manifest

    good = load_manifest(prep_folder)
    bad = {
        "label2": good.assign(label=2),
        "label_text": good.assign(label="fake"),
        "frame_nan": good.assign(frame_idx="nan"),
        "no_crops": good.assign(image=[str(d / "gone" / f"{i}.png") for i in range(len(good))]),
        "header_only": good.iloc[:0],
    }
    for name, df in bad.items():
        df.to_csv(d / f"{name}.csv", index=False)
    return d


# command (with {placeholders} from `files`), exit status, a phrase the message must contain
ROWS = [
    (["info", "--profile", "{d}/tab.yaml"], 2, "not valid YAML"),
    (["info", "--profile", "{d}/syntax.yaml"], 2, "syntax.yaml"),
    (["info", "--profile", "smoke", "--set", "data.image_size=-5"], 2, "data.image_size"),
    (["info", "--profile", "smoke", "--set", "model.neck.width=0"], 2, "model.neck.width"),
    (["info", "--profile", "smoke", "--set", "eval.bootstrap=50"], 2, "eval.bootstrap: 50 is out of range"),
    (
        ["info", "--profile", "smoke", "--set", "notebooks.paired_resamples=99"],
        2,
        "notebooks.paired_resamples",
    ),
    (["train", "--profile", "smoke", "--set", "train.epochs=0", "--run-dir", "{d}/r"], 2, "train.epochs"),
    (["train", "--profile", "smoke", "--set", "train.batch_size=0", "--run-dir", "{d}/r"], 2, "batch_size"),
    (["train", "--profile", "smoke", "--set", "train.log_every=0", "--run-dir", "{d}/r"], 2, "log_every"),
    (["train", "--profile", "smoke", "--set", "optim.accum_steps=0", "--run-dir", "{d}/r"], 2, "accum_steps"),
    (
        ["train", "--profile", "smoke", "--set", "train.batch_size=100000", "--run-dir", "{d}/r"],
        2,
        "train.batch_size=100000",
    ),
    (["train", "--profile", "smoke", "--run-dir", "{under_file}"], 2, "run folder"),
    (["overfit", "--profile", "smoke", "--batch", "0"], 2, "--batch"),
    (["overfit", "--profile", "smoke", "--steps", "0"], 2, "--steps"),
    (["prep", "--layout", "ffpp", "--root", "{ff}", "--frames", "0", "--out", "{d}/p"], 2, "--frames"),
    (["prep", "--layout", "ffpp", "--root", "{ff}", "--split", "tset", "--out", "{d}/p"], 2, "'tset'"),
    (["prep", "--layout", "ffpp", "--root", "{ff}", "--out", "{under_file}"], 2, "not writable"),
    (["prep", "--layout", "dfdc", "--root", "{dfdc}", "--out", "{d}/p"], 2, "metadata.json"),
    (["prep", "--layout", "celebdf", "--root", "{d}/nowhere", "--out", "{d}/p"], 2, "nowhere"),
    (["eval", "--checkpoint", "{d}/zero.pt", "--manifest", "{manifest}", "--out", "{d}/e"], 2, "zero.pt"),
    (
        ["eval", "--checkpoint", "{d}/state_dict.pt", "--manifest", "{manifest}", "--out", "{d}/e"],
        2,
        "state_dict.pt",
    ),
    (
        ["eval", "--checkpoint", "{d}/missing.pt", "--manifest", "{manifest}", "--out", "{d}/e"],
        2,
        "missing.pt",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{d}/not_manifest.csv", "--out", "{d}/e"],
        2,
        "not a manifest",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{manifest}", "--out", "{under_file}"],
        2,
        "not writable",
    ),
    (
        ["explain", "--checkpoint", "{bare}", "--manifest", "{manifest}", "--out", "{d}/x"],
        2,
        "no F-BiFPN neck",
    ),
    (
        ["explain", "--checkpoint", "{good}", "--manifest", "{manifest}", "--out", "{under_file}"],
        2,
        "not writable",
    ),
    (["detect", "{d}/empty_folder", "--checkpoint", "{good}"], 1, "no video or image"),
    (["detect", "{photo}", "--checkpoint", "{good}", "--json", "{under_file}/r.json"], 2, "r.json"),
    (["detect", "{photo}", "--checkpoint", "{good}", "--overlay", "{d}/o.txt"], 2, "o.txt"),
    (["detect", "{photo}", "--checkpoint", "{d}/zero.pt"], 2, "zero.pt"),
    (["bench", "train", "--profile", "smoke", "--json", "{under_file}/b.json"], 2, "not writable"),
    (["bench", "train", "--profile", "smoke", "--json", "{d}/empty_folder"], 2, "is a folder"),
    (["info", "--profile", "{d}/binary.yaml"], 2, "not a text (UTF-8) file"),
    (["info", "--profile", "{d}/folder.yaml"], 2, "is a folder"),
    (["info", "--profile", "smoke", "--set", "model.heads.grid=99999999999999999999"], 2, "64-bit"),
    (
        [
            "eval",
            "--checkpoint",
            "{good}",
            "--manifest",
            "{manifest}",
            "--out",
            "{d}/e",
            "--device",
            "cuda:7",
        ],
        2,
        "cuda:7",
    ),
    (
        [
            "eval",
            "--checkpoint",
            "{good}",
            "--manifest",
            "{manifest}",
            "--out",
            "{d}/e",
            "--device",
            "banana",
        ],
        2,
        "banana",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{d}/label2.csv", "--out", "{d}/e"],
        2,
        "column label is '2'",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{d}/label_text.csv", "--out", "{d}/e"],
        2,
        "label_text.csv",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{d}/frame_nan.csv", "--out", "{d}/e"],
        2,
        "column frame_idx",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{d}/no_crops.csv", "--out", "{d}/e"],
        2,
        "crops of all",
    ),
    (
        ["eval", "--checkpoint", "{good}", "--manifest", "{d}/header_only.csv", "--out", "{d}/e"],
        2,
        "has no rows",
    ),
    (["eval", "--checkpoint", "{d}", "--manifest", "{manifest}", "--out", "{d}/e"], 2, "is a folder"),
    (
        ["eval", "--checkpoint", "{d}/legacy_foreign.pt", "--manifest", "{manifest}", "--out", "{d}/e"],
        2,
        "legacy_foreign.pt",
    ),
    (
        ["eval", "--checkpoint", "{d}/legacy_cfg_text.pt", "--manifest", "{manifest}", "--out", "{d}/e"],
        2,
        "legacy_cfg_text.pt",
    ),
    (
        ["eval", "--checkpoint", "{d}/legacy_thr_text.pt", "--manifest", "{manifest}", "--out", "{d}/e"],
        2,
        "threshold 'high'",
    ),
    (
        ["eval", "--checkpoint", "{d}/legacy_thr_nan.pt", "--manifest", "{manifest}", "--out", "{d}/e"],
        2,
        "threshold nan",
    ),
    (["detect", "{photo}", "--checkpoint", "{good}", "--json", "{good}"], 2, "refusing to overwrite"),
    (
        ["detect", "{d}/copy.png", "--checkpoint", "{good}", "--overlay", "{d}/copy.png"],
        2,
        "refusing to overwrite",
    ),
]


@pytest.mark.parametrize(("command", "status", "phrase"), ROWS, ids=[" ".join(r[0][:4]) for r in ROWS])
def test_bad_input_over_the_cli(files, capsys, command, status, phrase):
    argv = [part.format(**files) for part in command]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals (a flag out of range) exit 2 too
        code = e.code
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == status, text
    assert phrase in text and "error:" in text, text


def test_a_bug_keeps_its_traceback(monkeypatch):
    """A ValueError from inside a library is no bad input: it is not dressed up as a message."""
    import numpy as np

    import fbifpn.config

    monkeypatch.setattr(fbifpn.config, "load_config", lambda *a: np.zeros(2).reshape(3))
    with pytest.raises(ValueError, match="reshape"):
        main(["info", "--profile", "smoke"])


@pytest.mark.parametrize("value", ["nan", "inf", ".nan", "-.inf"])
def test_non_finite_values_are_out_of_range(value, capsys):
    assert main(["info", "--profile", "smoke", "--set", f"optim.lr={value}"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["overfit", "--profile", "smoke", "--min-drop", value])


def test_synth_into_an_unwritable_folder_is_a_message(files, capsys):
    assert main(["synth", "--size", "smoke", "--out", str(files["under_file"])]) == 2
    assert "a_file is a file, not a folder" in capsys.readouterr().err


def test_prep_does_a_listed_video_again_once_it_is_on_disk(smoke_tree, tmp_path):
    root = tmp_path / "synth-ff"
    shutil.copytree(smoke_tree / "synth-ff", root)
    gone = next(e for e in ffpp.scan(root) if e.split == "test" and e.label == 0)
    kept = tmp_path / "kept.mp4"
    shutil.move(gone.path, kept)
    argv = ["prep", "--layout", "ffpp", "--root", str(root), "--split", "test", "--frames", "2"]
    assert main([*argv, "--out", str(tmp_path / "p")]) == 0
    shutil.move(kept, gone.path)  # the download finished
    assert main([*argv, "--out", str(tmp_path / "p")]) == 0
    report = json.loads((tmp_path / "p" / "prep_report.json").read_text())
    assert (
        report["failures"] == [] and report["videos"]["skipped_already_done"] == report["videos"]["total"] - 1
    )


def test_debug_shows_the_traceback(files):
    with pytest.raises(ValueError, match="data.image_size"):
        main(["info", "--profile", "smoke", "--set", "data.image_size=-5", "--debug"])


def test_a_full_disk_or_read_only_folder_is_a_message(monkeypatch, files, capsys):
    import fbifpn.engine.evaluate as evaluate

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(files["d"] / "e" / "scores.csv"))

    monkeypatch.setattr(evaluate, "predict", full)
    code = main(
        [
            "eval",
            "--checkpoint",
            str(files["good"]),
            "--manifest",
            str(files["manifest"]),
            "--out",
            str(files["d"] / "e"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "scores.csv" in err


def test_eval_writes_as_it_goes_and_finishes_atomically(monkeypatch, files):
    import fbifpn.metrics as metrics

    out = files["d"] / "stream"

    def dies(*args, **kwargs):
        raise OSError("the disk went away after scoring")

    monkeypatch.setattr(metrics, "evaluate_scores", dies)
    argv = [
        "eval",
        "--checkpoint",
        str(files["good"]),
        "--manifest",
        str(files["manifest"]),
        "--out",
        str(out),
    ]
    assert main(argv) == 2
    partial = pd.read_csv(out / "scores.partial.csv")
    assert len(partial) > 0 and set(partial["label"]) == {0, 1}  # what was scored is kept
    assert not (out / "scores.csv").exists() and not (out / "metrics.json").exists()
    monkeypatch.undo()
    assert main(argv) == 0
    assert len(pd.read_csv(out / "scores.csv")) >= len(
        partial.drop_duplicates(["video_id", "frame_idx", "face_idx"])
    )
    assert not (out / "scores.partial.csv").exists()


def test_an_unwritable_eval_out_fails_before_the_model_is_loaded(monkeypatch, files):
    calls = []
    monkeypatch.setattr(ckpt, "load_model", lambda *a: calls.append(a))
    argv = ["eval", "--checkpoint", str(files["good"]), "--manifest", str(files["manifest"])]
    assert main([*argv, "--out", str(files["under_file"])]) == 2
    assert calls == []


def test_a_nan_overfit_is_a_failure(monkeypatch, capsys):
    import fbifpn.sanity as sanity

    monkeypatch.setattr(sanity, "overfit", lambda *a, **k: [float("nan"), float("nan")])
    assert main(["overfit", "--profile", "smoke"]) == 1
    assert "not finite" in capsys.readouterr().err


def test_prep_reports_a_listed_video_missing_on_disk(smoke_tree, tmp_path):
    root = tmp_path / "synth-ff"
    shutil.copytree(smoke_tree / "synth-ff", root)
    listed = [e for e in ffpp.scan(root) if e.split == "test"]
    gone = next(e for e in listed if e.label == 0)
    gone.path.unlink()
    after = [e for e in ffpp.scan(root) if e.split == "test"]
    assert [e.video_id for e in after] == [e.video_id for e in listed]  # still listed
    out = tmp_path / "prep"
    assert (
        main(
            [
                "prep",
                "--layout",
                "ffpp",
                "--root",
                str(root),
                "--split",
                "test",
                "--frames",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "prep_report.json").read_text())
    assert report["videos"]["total"] == len(listed)
    assert {"file": str(gone.path), "reason": "video file not found"} in report["failures"]


def test_celebdf_keeps_a_listed_test_video_missing_on_disk(smoke_tree, tmp_path):
    from fbifpn.data.sources import celebdf

    root = tmp_path / "synth-cdf"
    shutil.copytree(smoke_tree / "synth-cdf", root)
    before = {e.video_id: e for e in celebdf.scan(root) if e.split == "test"}
    next(iter(before.values())).path.unlink()
    after = {e.video_id: e for e in celebdf.scan(root) if e.split == "test"}
    assert after.keys() == before.keys()


def test_prep_options_refuse_nonsense():
    for bad in ({"frames": 0}, {"size": -1}, {"scale": 0}, {"detect_every": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PrepOptions(**bad)


def test_detect_never_replaces_a_device_or_a_fifo_and_writes_through_a_symlink(files, tmp_path):
    import os
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a device or a FIFO: a rename over it would swap it for a regular file
    argv = ["detect", str(files["photo"]), "--checkpoint", str(files["good"]), "--frames", "1"]
    assert main([*argv, "--json", str(fifo)]) == 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    link.symlink_to(real)
    assert main([*argv, "--detector", "haar", "--json", str(link)]) in (0, 1)
    assert link.is_symlink() and len(json.loads(real.read_text())) == 1


def test_detect_gives_a_symlink_and_its_target_their_own_overlays(files, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(files["photo"], folder / "a.mp4")
    shutil.copy(files["photo"].with_suffix(".json"), folder / "a.json")
    (folder / "b.mp4").symlink_to(folder / "a.mp4")
    argv = ["detect", str(folder / "a.mp4"), str(folder / "b.mp4"), str(folder / "a.mp4")]
    assert main(
        [
            *argv,
            "--checkpoint",
            str(files["good"]),
            "--frames",
            "1",
            "--overlay",
            str(tmp_path / "ov"),
            "--json",
            str(tmp_path / "r.json"),
            "--detector",
            "haar",
        ]
    ) in (0, 1)
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results) == 2  # the same path twice is one input
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["a.mp4.overlay.mp4", "b.mp4.overlay.mp4"]


def test_detect_names_a_fifo_input(files, tmp_path):
    import os

    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    assert (
        main(["detect", str(fifo), "--checkpoint", str(files["good"]), "--json", str(tmp_path / "r.json")])
        == 1
    )
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert "not a regular file" in entry["error"]


def test_resume_with_another_profile_is_refused_before_any_data_is_made(files, tmp_path, monkeypatch, capsys):
    import fbifpn.data.cache as cache_module
    import fbifpn.engine.train as train_module

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(files["good"], run / "last.pt")
    touched = []
    monkeypatch.setattr(cache_module, "prepared_manifest", lambda *a, **k: touched.append("made"))
    monkeypatch.setattr(train_module, "load_manifest", lambda *a, **k: touched.append("read"))
    assert main(["train", "--profile", "demo", "--run-dir", str(run), "--resume"]) == 2
    assert "its config differs" in capsys.readouterr().err
    assert touched == []  # refused before the demo benchmark is built or read (calls counted)
