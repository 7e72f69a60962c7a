"""Layout adapters on mini trees written in each real layout."""

import dataclasses
import inspect
import json

import pytest
from conftest import noise_frames, write_cv_video

from fbifpn.data.sources import LayoutError, celebdf, deepfakebench, dfdc, dfdcp, ffpp
from fbifpn.data.sources.base import ScanOptions


def _touch_video(path):
    return write_cv_video(path, noise_frames(2, 16))


@pytest.fixture
def ff_tree(tmp_path):
    root = tmp_path / "ff"
    ids = [f"{i:03d}" for i in range(6)]
    pairs = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
    for split, ps in pairs.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / f"splits/{split}.json").write_text(json.dumps(ps))
    for i in ids:
        _touch_video(root / f"original_sequences/youtube/c23/videos/{i}.mp4")
    for ps in pairs.values():
        for a, b in ps:
            for name in (f"{a}_{b}", f"{b}_{a}"):
                _touch_video(root / f"manipulated_sequences/Deepfakes/c23/videos/{name}.mp4")
                _touch_video(root / f"manipulated_sequences/Deepfakes/masks/videos/{name}.mp4")
                _touch_video(root / f"manipulated_sequences/FaceShifter/c23/videos/{name}.mp4")
    return root


def test_ffpp_scan(ff_tree):
    entries = ffpp.scan(ff_tree, ScanOptions(compression="c23"))
    assert len(entries) == 6 + 6 + 6
    by_id = {e.video_id: e for e in entries}
    assert len(by_id) == len(entries)  # globally unique ids
    assert by_id["FF++/real/c23/000"].split == "train" and by_id["FF++/real/c23/000"].label == 0
    df = by_id["FF++/Deepfakes/c23/003_002"]
    assert (df.split, df.label, df.method, df.compression, df.has_mask) == (
        "val",
        1,
        "Deepfakes",
        "c23",
        True,
    )
    assert df.mask_path == ff_tree / "manipulated_sequences/Deepfakes/masks/videos/003_002.mp4"
    fsh = by_id["FF++/FaceShifter/c23/005_004"]
    assert (
        fsh.split == "test" and not fsh.has_mask and fsh.mask_path is None
    )  # no ground truth, not "no fake"
    assert {e.split for e in entries} == {"train", "val", "test"}


def test_ffpp_family_is_the_target_video(ff_tree):
    family = {e.video_id: e.family for e in ffpp.scan(ff_tree, ScanOptions(compression="c23"))}
    made_from_002 = ["FF++/real/c23/002", "FF++/Deepfakes/c23/002_003", "FF++/FaceShifter/c23/002_003"]
    assert {family[v] for v in made_from_002} == {"FF++/002"}  # no method or level in it: one for all
    assert family["FF++/real/c23/003"] == family["FF++/Deepfakes/c23/003_002"] == "FF++/003"
    assert len(set(family.values())) == 6  # one per real video


def test_ffpp_broken_trees_name_what_is_missing(ff_tree):
    with pytest.raises(LayoutError, match=r"original_sequences/youtube/c40/videos"):
        ffpp.scan(ff_tree, ScanOptions(compression="c40"))
    (ff_tree / "splits/val.json").unlink()
    with pytest.raises(LayoutError, match=r"splits/val\.json"):
        ffpp.scan(ff_tree)
    with pytest.raises(LayoutError, match="nowhere"):
        ffpp.scan(ff_tree / "nowhere")


@pytest.fixture
def cdf_tree(tmp_path):
    root = tmp_path / "cdf"
    for i in range(12):
        _touch_video(root / f"Celeb-real/id{i}_0000.mp4")
        _touch_video(root / f"Celeb-synthesis/id{i}_id{(i + 1) % 12}_0000.mp4")
    for y in range(3):
        _touch_video(root / f"YouTube-real/{y:05d}.mp4")
    tests = ["1 Celeb-real/id0_0000.mp4", "0 Celeb-synthesis/id0_id1_0000.mp4", "1 YouTube-real/00000.mp4"]
    (root / "List_of_testing_videos.txt").write_text("\n".join(tests) + "\n")
    return root


def test_celebdf_scan(cdf_tree):
    entries = celebdf.scan(cdf_tree)
    assert len(entries) == 12 + 12 + 3
    test = {str(e.path.relative_to(cdf_tree)): e.label for e in entries if e.split == "test"}
    assert test == {
        "Celeb-real/id0_0000.mp4": 0,
        "Celeb-synthesis/id0_id1_0000.mp4": 1,
        "YouTube-real/00000.mp4": 0,
    }
    val = [e for e in entries if e.split == "val"]
    assert val, "a validation split is carved out of train"
    val_ids = {e.path.name.split("_")[0] for e in val}
    train_ids = {e.path.name.split("_")[0] for e in entries if e.split == "train"}
    assert not val_ids & train_ids  # by identity: no celebrity in both
    assert celebdf.scan(cdf_tree) == entries  # deterministic


def test_celebdf_family_is_the_celebrity_and_a_youtube_video_its_own(cdf_tree):
    family = {e.video_id: e.family for e in celebdf.scan(cdf_tree)}
    celeb3 = ["Celeb-DF-v2/Celeb-real/id3_0000", "Celeb-DF-v2/Celeb-synthesis/id3_id4_0000"]
    assert {family[v] for v in celeb3} == {"Celeb-DF-v2/id3"}  # the first id: the target celebrity
    assert family["Celeb-DF-v2/Celeb-synthesis/id2_id3_0000"] == "Celeb-DF-v2/id2"
    youtube = {family[f"Celeb-DF-v2/YouTube-real/{y:05d}"] for y in range(3)}
    assert len(youtube) == 3 and not youtube & set(family[v] for v in celeb3)


def test_celebdf_train_index_cannot_leak_test_videos(cdf_tree, tmp_path):
    everything = [str(p.relative_to(cdf_tree)) for p in cdf_tree.rglob("*.mp4")]
    index = tmp_path / "train.json"
    index.write_text(json.dumps(everything))  # a peer's index that puts all videos in train
    entries = celebdf.scan(cdf_tree, ScanOptions(train_list=index))
    trainish = {e.path for e in entries if e.split in ("train", "val")}
    tests = {e.path for e in entries if e.split == "test"}
    assert len(tests) == 3 and not trainish & tests


def test_celebdf_broken_list(cdf_tree):
    (cdf_tree / "List_of_testing_videos.txt").write_text("1 Celeb-real/id99_0000.mp4\n")
    with pytest.raises(LayoutError, match="id99_0000"):
        celebdf.scan(cdf_tree)


@pytest.fixture
def dfdc_tree(tmp_path):
    root = tmp_path / "dfdc"
    for part in range(3):
        meta = {
            f"r{part}.mp4": {"label": "REAL", "split": "train"},
            f"f{part}.mp4": {"label": "FAKE", "split": "train", "original": f"r{part}.mp4"},
        }
        (root / f"dfdc_train_part_{part}").mkdir(parents=True)
        (root / f"dfdc_train_part_{part}/metadata.json").write_text(json.dumps(meta))
    (root / "test").mkdir()
    (root / "test/labels.csv").write_text("filename,label\na.mp4,0\nb.mp4,1\n")
    return root


def test_dfdc_scan(dfdc_tree):
    root = dfdc_tree
    entries = dfdc.scan(root)
    assert len(entries) == 8
    splits = {e.video_id: (e.split, e.label) for e in entries}
    assert splits["DFDC/dfdc_train_part_2/f2"] == ("val", 1)  # the last part is held out
    assert splits["DFDC/dfdc_train_part_0/r0"] == ("train", 0)
    assert splits["DFDC/test/b"] == ("test", 1)
    (root / "dfdc_train_part_1/metadata.json").unlink()
    with pytest.raises(LayoutError, match=r"dfdc_train_part_1/metadata\.json"):
        dfdc.scan(root)


def test_dfdc_family_is_the_original_and_a_test_video_its_own(dfdc_tree):
    family = {e.video_id: e.family for e in dfdc.scan(dfdc_tree)}
    for part in range(3):  # a fake shares the family of the real metadata.json names as its original
        assert (
            family[f"DFDC/dfdc_train_part_{part}/f{part}"] == family[f"DFDC/dfdc_train_part_{part}/r{part}"]
        )
    assert family["DFDC/dfdc_train_part_0/r0"] == "DFDC/r0"
    assert len({family[f"DFDC/dfdc_train_part_{p}/r{p}"] for p in range(3)}) == 3
    # labels.csv names no original: each test video is its own family
    assert family["DFDC/test/a"] == "DFDC/test/a" and family["DFDC/test/b"] == "DFDC/test/b"


@pytest.fixture
def dfdcp_tree(tmp_path):
    root = tmp_path / "dfdcp"
    root.mkdir()
    index = {}
    for ident in range(20):
        index[f"original_videos/{ident}/{ident}_A/x.mp4"] = {"label": "real", "set": "train"}
        index[f"method_A/{ident}/{ident}_A_001/y.mp4"] = {
            "label": "fake",
            "set": "train" if ident < 15 else "test",
        }
    (root / "dataset.json").write_text(json.dumps(index))
    return root


def test_dfdcp_family_is_the_subject(dfdcp_tree):
    family = {e.video_id: e.family for e in dfdcp.scan(dfdcp_tree)}
    assert family["DFDCP/original_videos/3/3_A/x"] == family["DFDCP/method_A/3/3_A_001/y"] == "DFDCP/3"
    assert len(set(family.values())) == 20


def test_dfdcp_scan(dfdcp_tree):
    root = dfdcp_tree
    entries = dfdcp.scan(root)
    assert len(entries) == 40 and {e.split for e in entries} == {"train", "val", "test"}
    fakes = [e for e in entries if e.label == 1]
    assert {e.method for e in fakes} == {"method_A"}
    by_identity = {}
    for e in entries:
        if e.split != "test":
            by_identity.setdefault(e.path.parts[-3], set()).add(e.split)
    assert all(len(s) == 1 for s in by_identity.values())  # an identity is in train or val, not both
    (root / "dataset.json").write_text(json.dumps({"a.mp4": {"label": "maybe", "set": "train"}}))
    with pytest.raises(LayoutError, match="maybe"):
        dfdcp.scan(root)


def test_deepfakebench_ids_masks_and_even_spacing(tmp_path):
    root = tmp_path / "dfb"
    index = {"FaceForensics++": {}}
    for label in ("FF-real", "FF-DF", "FF-F2F", "FF-FS", "FF-NT"):
        video = "000" if label == "FF-real" else "000_003"
        folder = f"FaceForensics++/{label}/frames/{video}"
        frames = []
        for i in range(10):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"{i:03d}.png").write_bytes(b"png")
            frames.append(f"{folder}/{i:03d}.png".replace("/", "\\"))  # Windows separators
        if label == "FF-DF":  # masks exist for this method only
            (root / folder.replace("frames", "masks")).mkdir(parents=True)
            for i in range(10):
                (root / folder.replace("frames", "masks") / f"{i:03d}.png").write_bytes(b"png")
        index["FaceForensics++"][label] = {"train": {"c23": {video: {"label": label, "frames": frames}}}}
    json_path = tmp_path / "FaceForensics++.json"
    json_path.write_text(json.dumps(index))
    entries = deepfakebench.scan(root, ScanOptions(index=json_path, frames=4))
    fakes = [e for e in entries if e.label == 1]
    assert len({e.video_id for e in fakes}) == 4  # 000_003 of four methods stays four videos
    assert all(len(e.frames) == 4 for e in entries)
    assert [p.name for p in fakes[0].frames] == ["000.png", "003.png", "006.png", "009.png"]  # evenly spaced
    by_method = {e.method: e for e in entries}
    assert by_method["FF-DF"].has_mask and all(m is not None for m in by_method["FF-DF"].masks)
    assert not by_method["FF-NT"].has_mask  # a fake without a mask file has no ground truth
    assert by_method["real"].has_mask and by_method["real"].label == 0  # a real: all-zero mask
    assert by_method["real"].compression == "c23"
    with pytest.raises(LayoutError, match="no video"):
        deepfakebench.scan(root, ScanOptions(index=json_path, frames=4, compression="c40"))


@pytest.mark.parametrize("adapter", [ffpp, celebdf, dfdc, dfdcp, deepfakebench])
def test_every_adapter_has_one_signature_and_refuses_options_it_does_not_take(adapter, tmp_path):
    assert list(inspect.signature(adapter.scan).parameters) == ["root", "options"]
    assert {f.name for f in dataclasses.fields(ScanOptions)} >= adapter.TAKES
    unused = next(f.name for f in dataclasses.fields(ScanOptions) if f.name not in adapter.TAKES)
    value = ("x",) if unused == "methods" else tmp_path if unused.endswith(("_dir", "_list")) else 7
    with pytest.raises(LayoutError, match=f"layout takes no {unused} option"):
        adapter.scan(tmp_path, ScanOptions(**{unused: value}))
