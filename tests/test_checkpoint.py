"""Checkpoint integrity: a digest checked on every load, a clear refusal of every unusable file, no
orphan temporary files, and a resume that refuses any config change that alters the training."""

import dataclasses
import json
import re
import struct
import zipfile

import pytest
import torch

from fbifpn import atomic, build_model, load_config
from fbifpn.cli import main
from fbifpn.config import config_from_dict
from fbifpn.data.cache import prepared_manifest
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine import fit

SHORT = ["train.epochs=1", "train.max_steps=2"]


@pytest.fixture(scope="module")
def smoke_manifest():
    return prepared_manifest(load_config("smoke"), progress=False)


@pytest.fixture
def threads():
    """Tests that set the torch thread count leave it as they found it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _content(smoke) -> dict:
    torch.manual_seed(0)
    return {
        "model": {"w": torch.randn(64, 256), "b": torch.zeros(3, dtype=torch.bfloat16)},
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0)}},
            "param_groups": [{"params": [0], "lr": 0.1}],
        },
        "config": smoke.to_dict(),
        "rng": (3, [1, 2], None),
        "threshold": 0.25,
    }


def _tensor_data(path) -> tuple[int, int]:
    """Where in the file the bytes of its largest tensor lie: torch stores them uncompressed in
    `<archive>/data/N` zip entries."""
    with zipfile.ZipFile(path) as z:
        entries = [i for i in z.infolist() if re.search(r"/data/\d+$", i.filename)]
    info = max(entries, key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_a_round_trip_keeps_the_contents_and_a_stable_digest(smoke, tmp_path):
    content = _content(smoke)
    ckpt.save(tmp_path / "a.pt", **content)
    ckpt.save(tmp_path / "b.pt", **_content(smoke))
    a = ckpt.load(tmp_path / "a.pt")
    assert torch.equal(a["model"]["w"], content["model"]["w"]) and a["model"]["b"].dtype == torch.bfloat16
    assert a["config"] == content["config"] and a["rng"] == content["rng"] and "digest" not in a
    raw = torch.load(tmp_path / "a.pt", weights_only=True)  # still a plain torch checkpoint
    assert raw["digest"]["algorithm"] == "sha256"
    assert raw["digest"] == torch.load(tmp_path / "b.pt", weights_only=True)["digest"]
    changed = _content(smoke)
    changed["model"]["w"][17, 3] += 1
    assert ckpt.digest(changed) != ckpt.digest(content)
    assert ckpt.digest(a) == raw["digest"]["value"]


def test_bit_rot_in_the_tensor_data_is_refused_naming_the_file(smoke, tmp_path, capsys):
    path = tmp_path / "last.pt"
    ckpt.save(path, **_content(smoke))
    start, size = _tensor_data(path)
    data = bytearray(path.read_bytes())
    middle = start + size // 2 - 500
    data[middle : middle + 1000] = bytes(b ^ 0xFF for b in data[middle : middle + 1000])
    path.write_bytes(data)
    assert torch.load(path, weights_only=True)["model"]["w"].shape == (64, 256)  # torch alone is fooled
    with pytest.raises(ckpt.CheckpointError, match=rf"{re.escape(str(path))}: refused, .*do not match"):
        ckpt.load(path)
    assert main(["eval", "--checkpoint", str(path), "--manifest", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "do not match their digest" in capsys.readouterr().err


def test_a_truncated_file_is_refused_naming_the_file(smoke, tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save(path, **_content(smoke))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ckpt.CheckpointError, match=rf"{re.escape(str(path))}: .*truncated or corrupt"):
        ckpt.load(path)


def test_an_empty_file_is_refused(tmp_path):
    (tmp_path / "last.pt").touch()
    with pytest.raises(ckpt.CheckpointError, match=r"last\.pt: refused, it is an empty file \(0 bytes\)"):
        ckpt.load(tmp_path / "last.pt")


def test_a_plain_state_dict_or_a_non_dict_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"weights\.pt: .*not an fbifpn checkpoint: no 'config'"):
        ckpt.load(tmp_path / "weights.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ckpt.CheckpointError, match=r"list\.pt: .*not an fbifpn checkpoint: it holds a list"):
        ckpt.load(tmp_path / "list.pt")


def test_a_checkpoint_from_before_digests_loads_with_a_warning_and_gains_one(smoke, tmp_path):
    """Ours by its keys, older than digests: loaded unchecked, said so; saved again, it is sealed."""
    torch.save(_content(smoke), tmp_path / "old.pt")
    with pytest.warns(UserWarning, match=r"old\.pt: carries no digest"):
        old = ckpt.load(tmp_path / "old.pt")
    real = {"model": build_model(smoke, pretrained=False).state_dict(), "config": smoke.to_dict()}
    torch.save(real, tmp_path / "old_model.pt")
    with pytest.warns(UserWarning, match="carries no digest"):
        ckpt.load_model(tmp_path / "old_model.pt")
    ckpt.save(tmp_path / "old.pt", **old)
    assert "digest" in torch.load(tmp_path / "old.pt", weights_only=True)


def test_a_save_removes_the_temporary_files_a_killed_save_left(smoke, tmp_path):
    ckpt.save(tmp_path / "last.pt", **_content(smoke))
    orphans = [atomic.temp_beside(tmp_path / "last.pt") for _ in range(2)]
    others = [atomic.temp_beside(tmp_path / "best.pt"), tmp_path / "notes.tmp", tmp_path / "last.pt.txt"]
    for f in orphans + others:
        f.write_bytes(b"half a checkpoint")
    ckpt.save(tmp_path / "last.pt", **_content(smoke))
    assert not any(f.exists() for f in orphans) and all(f.exists() for f in others)
    assert ckpt.load(tmp_path / "last.pt")["threshold"] == 0.25


def test_resume_names_every_key_that_changes_the_training(smoke_manifest, tmp_path):
    fit(load_config("smoke", SHORT), smoke_manifest, tmp_path / "run", progress=False)
    changed = load_config("smoke", [*SHORT, "train.batch_size=4", "optim.lr=0.01", "train.log_every=1"])
    with pytest.raises(ckpt.CheckpointError) as error:
        fit(changed, smoke_manifest, tmp_path / "run", resume=True, progress=False)
    message = str(error.value)
    assert str(tmp_path / "run/last.pt") in message
    assert "optim.lr (0.001 vs 0.01)" in message and "train.batch_size (8 vs 4)" in message
    assert "log_every" not in message


def test_resume_accepts_keys_that_do_not_change_the_training(smoke_manifest, tmp_path):
    fit(load_config("smoke", SHORT), smoke_manifest, tmp_path / "run", progress=False)
    harmless = ["train.log_every=1", "eval.bootstrap=200", "notebooks.gradcam_frames=2", "profile=other"]
    result = fit(
        load_config("smoke", [*SHORT, *harmless]),
        smoke_manifest,
        tmp_path / "run",
        resume=True,
        progress=False,
    )
    assert result.steps == 2


def test_resume_restores_the_thread_count_it_was_trained_with(
    smoke_manifest, tmp_path, threads, capsys, monkeypatch
):
    torch.set_num_threads(2)
    fit(load_config("smoke", SHORT), smoke_manifest, tmp_path / "run", progress=False)
    assert torch.load(tmp_path / "run/last.pt", weights_only=True)["torch_threads"] == 2
    torch.set_num_threads(1)
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or real(n))
    fit(load_config("smoke", SHORT), smoke_manifest, tmp_path / "run", resume=True, progress=False)
    assert calls == [2, 1]  # the run's count while it trains, the caller's back afterwards
    assert torch.get_num_threads() == 1
    assert "torch threads set to 2 (was 1)" in capsys.readouterr().out


def test_a_checkpoint_carries_its_manifests_prep_options_which_a_resume_does_not_compare(
    smoke_manifest, tmp_path
):
    """How the training crops were cut travels with the weights (`detect` cuts the same way); it is
    a fact about the data, not config, so the resume check leaves it alone."""
    from fbifpn.data.manifest import load_manifest
    from fbifpn.data.prep import recorded_options

    cfg = load_config("smoke", SHORT)
    fit(cfg, smoke_manifest, tmp_path / "run", progress=False)
    made_with = dataclasses.asdict(recorded_options(smoke_manifest))
    for name in ("best.pt", "last.pt"):
        assert ckpt.load(tmp_path / "run" / name)[ckpt.PREP] == made_with
    saved = ckpt.load(tmp_path / "run/last.pt")
    other_crops = {**saved, ckpt.PREP: {**made_with, "size": 2 * made_with["size"]}}
    ckpt.check_resume_config(other_crops, cfg, tmp_path / "run/last.pt")
    # an index of crops prep did not cut (no prep_options.json beside the CSV): nothing to carry
    load_manifest(smoke_manifest).to_csv(tmp_path / "index.csv", index=False)
    fit(cfg, tmp_path / "index.csv", tmp_path / "from_index", progress=False)
    assert ckpt.load(tmp_path / "from_index/last.pt")[ckpt.PREP] is None


def test_what_a_trained_variant_saves_is_the_model_it_built(smoke_manifest, tmp_path):
    from fbifpn.engine.evaluate import evaluate_checkpoint

    cfg = load_config("smoke", [*SHORT, "model.variant=fpn"])
    result = fit(cfg, smoke_manifest, tmp_path / "run", progress=False)
    report = evaluate_checkpoint(
        result.best_checkpoint, smoke_manifest, tmp_path / "eval", frames=1, tta_flip=False, progress=False
    )
    stored = [
        json.loads((tmp_path / "run" / "config.json").read_text()),
        ckpt.load(result.best_checkpoint)["config"],
        ckpt.load(result.last_checkpoint)["config"],
        report["config"],
        json.loads((tmp_path / "eval" / "metrics.json").read_text())["config"],
    ]
    for config in stored:
        assert (config["model"]["neck"]["topology"], config["model"]["neck"]["attention"]) == ("fpn", "none")
        rebuilt = build_model(config_from_dict(config), pretrained=False)
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
            k: v.shape for k, v in result.model.state_dict().items()
        }


def test_a_resume_on_crops_cut_another_way_is_refused(smoke_manifest, tmp_path):
    cfg = load_config("smoke", SHORT)
    fit(cfg, smoke_manifest, tmp_path / "run", progress=False)
    saved = ckpt.load(tmp_path / "run/last.pt")
    saved.pop(ckpt.DIGEST, None)
    size = saved[ckpt.PREP]["size"]
    ckpt.save(tmp_path / "run/last.pt", **{**saved, ckpt.PREP: {**saved[ckpt.PREP], "size": 2 * size}})
    with pytest.raises(
        ckpt.CheckpointError,
        match=rf"cut with size={2 * size}, but this manifest's were cut with size={size}",
    ):
        fit(cfg, smoke_manifest, tmp_path / "run", resume=True, progress=False)
