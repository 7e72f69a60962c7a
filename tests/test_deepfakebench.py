"""DeepfakeBench indexes as rearrange.py writes them, and the raw layouts people keep: one split
per video, test as the dataset lists it, nothing leaked, every change reported."""

import json
import warnings

import deepfakebench_trees as trees
import pandas as pd
import pytest
from conftest import noise_frames, write_cv_video

from fbifpn.cli import main
from fbifpn.data.manifest import FamilyWarning, load_manifest
from fbifpn.data.prep import PrepOptions, part_path, prep, write_outputs
from fbifpn.data.sources import LayoutError, LayoutWarning, deepfakebench, dfdc, ffpp, scan
from fbifpn.data.sources.base import ScanOptions

PAIRS = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
CDF_TESTS = (
    "Celeb-real/id0_0000.mp4",
    "Celeb-real/id1_0000.mp4",
    "YouTube-real/00000.mp4",
    "Celeb-synthesis/id0_id1_0000.mp4",
    "Celeb-synthesis/id5_id6_0000.mp4",
)


def _splits(entries):
    return {s: sum(e.split == s for e in entries) for s in ("train", "val", "test")}


def _one_split_each(entries):
    ids = [e.video_id for e in entries]
    assert len(ids) == len(set(ids))


def _name(e):
    return e.video_id.split("/")[-1]


# 1. DFDC: "label" and "frames" keys beside the videos once ended in AttributeError.
def test_dfdc_index_with_stray_keys(tmp_path):
    index = trees.dfdc(tmp_path / "rgb", tmp_path, parts=10, per_part=2, n_test=4)
    entries, notes = scan("deepfakebench", tmp_path / "rgb", index=index)
    _one_split_each(entries)
    assert _splits(entries) == {"train": 18, "val": 2, "test": 4}
    val_parts = {e.frames[0].parts[-4] for e in entries if e.split == "val"}
    assert (
        val_parts == dfdc.held_out_parts([f"dfdc_train_part_{p}" for p in range(10)]) == {"dfdc_train_part_9"}
    )
    assert {_name(e) for e in entries if e.split == "test"} == {f"t{t:04d}" for t in range(4)}
    changes = {n["change"] for n in notes}
    assert {"stray keys ignored", "val carved from train", "splits"} <= changes
    stray = next(n for n in notes if n["change"] == "stray keys ignored")
    assert stray["keys"] == [
        "DFDC/DFDC_Fake/val/frames",
        "DFDC/DFDC_Fake/val/label",
        "DFDC/DFDC_Real/val/frames",
        "DFDC/DFDC_Real/val/label",
    ]


# 2. Celeb-DF-v2: test videos are also under train; prep once duplicated them and counted 18 for 8.
def test_celebdf_index_keeps_test_videos_out_of_train(tmp_path):
    index = trees.celebdf(tmp_path / "rgb", tmp_path, n_ids=12, n_youtube=4, tests=CDF_TESTS)
    listed = json.loads(index.read_text())["Celeb-DF-v2"]
    assert sum(len(v["train"]) for v in listed.values()) == 28  # every video under train, as written
    entries, notes = scan("deepfakebench", tmp_path / "rgb", index=index)
    _one_split_each(entries)
    test = {e.video_id for e in entries if e.split == "test"}
    assert {_name(e) for e in entries if e.split == "test"} == {rel.split("/")[1][:-4] for rel in CDF_TESTS}
    assert len(entries) == 28 and _splits(entries)["test"] == 5
    leak = next(n for n in notes if n["change"] == "test videos removed from train")
    assert leak["videos"] == 5
    counts = next(n for n in notes if n["change"] == "splits")
    assert counts["listed"] == {"train": 28, "val": 5, "test": 5}
    assert counts["kept"] == {"train": 23 - counts["kept"]["val"], "val": counts["kept"]["val"], "test": 5}
    assert counts["kept"]["val"] > 0
    # val by identity: no celebrity both in train and in val
    ident = {s: {_name(e).split("_")[0] for e in entries if e.split == s} for s in ("train", "val")}
    assert not ident["train"] & ident["val"]

    out = tmp_path / "prep"
    report = prep(entries, out, PrepOptions(frames=4), progress=False, notes=notes)
    df = load_manifest(out)
    assert df.groupby("video_id")["split"].nunique().max() == 1
    assert df.groupby("video_id").size().max() == 4  # each video's crops once, not 2-3 times
    assert set(df.loc[df.split == "test", "video_id"]) == test
    assert report["videos"]["total"] == 28 and report["splits"]["test"] == {"videos": 5, "done": 5}
    on_disk = json.loads((out / "prep_report.json").read_text())
    assert [n["change"] for n in on_disk["layout"]] == [n["change"] for n in notes]


def test_celebdf_index_leak_does_not_depend_on_key_order(tmp_path):
    index = trees.celebdf(tmp_path / "rgb", tmp_path, tests=CDF_TESTS)
    data = json.loads(index.read_text())
    for label in data["Celeb-DF-v2"].values():  # test before train: the other dict order
        items = list(label.items())
        label.clear()
        label.update(reversed(items))
    flipped = tmp_path / "flipped.json"
    flipped.write_text(json.dumps(data))
    a, _ = scan("deepfakebench", tmp_path / "rgb", index=index)
    b, _ = scan("deepfakebench", tmp_path / "rgb", index=flipped)
    assert [(e.video_id, e.split) for e in a] == [(e.video_id, e.split) for e in b]


# 3. DFDCP: val is written equal to test, and the test split once disappeared into val.
def test_dfdcp_index_keeps_its_test_split(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=20, test_from=15)
    entries, notes = scan("deepfakebench", tmp_path / "rgb", index=index)
    _one_split_each(entries)
    splits = _splits(entries)
    assert splits["test"] == 5 * 3 and splits["val"] > 0 and splits["train"] + splits["val"] == 15 * 3
    test_subjects = {_name(e).split("_")[0] for e in entries if e.split == "test"}
    assert test_subjects == {str(1000 + s) for s in range(15, 20)}
    subject = {s: {_name(e).split("_")[0] for e in entries if e.split == s} for s in ("train", "val")}
    assert not subject["train"] & subject["val"]  # a subject's real and fakes stay on one side
    carved = next(n for n in notes if n["change"] == "val carved from train")
    assert "repeats 15 test videos" in carved["message"]


# 4. Frames listed in directory order: --frames 2 once took frames 1 and 4 instead of 0 and 7.
def test_frames_are_sampled_in_time_order(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=2, test_from=1, n=8)
    listed = json.loads(index.read_text())["DFDCP"]["DFDCP_Real"]["test"]["1001_A_000"]["frames"]
    assert [p[-7:-4] for p in listed] == ["001", "006", "003", "000", "005", "002", "007", "004"]
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index, frames=2))
    assert all([p.name for p in e.frames] == ["000.png", "007.png"] for e in entries)
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index, frames=3))
    assert all([p.name for p in e.frames] == ["000.png", "004.png", "007.png"] for e in entries)


@pytest.mark.parametrize("style", ["posix", "windows", "relative"])
def test_absolute_and_foreign_paths_map_onto_root(tmp_path, style):
    root = tmp_path / "copy-of-rgb"
    files = trees.ffpp(root, tmp_path, PAIRS, methods=("Deepfakes",), n=3, style=style)
    entries = deepfakebench.scan(root, ScanOptions(index=files["FaceForensics++"]))
    assert all(p.is_file() for e in entries for p in e.frames)
    assert all(p.is_relative_to(root) for e in entries for p in e.frames)
    fake = next(e for e in entries if e.label == 1)
    assert fake.has_mask and all(m is not None and m.is_file() for m in fake.masks)
    # --root may also name the dataset's folder itself
    inner = deepfakebench.scan(root / "FaceForensics++", ScanOptions(index=files["FaceForensics++"]))
    assert [e.frames for e in inner] == [e.frames for e in entries]


def test_renamed_copy_of_an_absolute_index_is_found_by_probing(tmp_path):
    index = trees.dfdcp(tmp_path / "elsewhere", tmp_path, subjects=3, test_from=2, style="posix")
    moved = tmp_path / "mine"
    (tmp_path / "elsewhere" / "DFDCP").rename(moved)  # /data/rgb/DFDCP/... now lives in mine/
    entries = deepfakebench.scan(moved, ScanOptions(index=index))
    assert all(p.is_file() for e in entries for p in e.frames)


def test_no_listed_frame_under_root_is_one_error(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=3, test_from=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="none of the listed frames is under"):
        deepfakebench.scan(tmp_path / "empty", ScanOptions(index=index))


# 5e. The per-method indexes once made "FF-DF" the dataset.
def test_per_method_and_whole_ffpp_indexes_agree(tmp_path):
    files = trees.ffpp(tmp_path / "rgb", tmp_path, PAIRS, n=3)
    whole, notes = scan("deepfakebench", tmp_path / "rgb", index=files["FaceForensics++"])
    assert notes == []  # FF++'s own val is kept: nothing moved
    _one_split_each(whole)
    assert _splits(whole) == {"train": 4 + 16, "val": 2 + 8, "test": 2 + 8}
    by_id = {e.video_id: e.split for e in whole}
    assert by_id["FaceForensics++/FF-real/c23/004"] == "val"
    assert by_id["FaceForensics++/FF-NT/c23/007_006"] == "test"
    union = {}
    for label in ("FF-DF", "FF-F2F", "FF-FS", "FF-NT"):
        part = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=files[label]))
        assert {e.dataset for e in part} == {"FaceForensics++"}
        assert {e.method for e in part} == {"real", label}
        union |= {e.video_id: e.split for e in part}
    assert union == by_id
    renamed = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=files["FF-DF"], dataset="FF++"))
    assert {e.video_id.split("/")[0] for e in renamed} == {"FF++"}


def test_families_follow_the_rule_of_each_indexed_dataset(tmp_path):
    def family(index):
        return {e.video_id: e.family for e in deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index))}

    ff = family(trees.ffpp(tmp_path / "rgb", tmp_path, PAIRS, n=2)["FaceForensics++"])
    made_from_000 = ["FaceForensics++/FF-real/c23/000"] + [
        f"FaceForensics++/{label}/c23/000_001" for label in trees.FF_LABELS.values()
    ]
    assert {ff[v] for v in made_from_000} == {"FaceForensics++/000"}  # the target video, every method
    assert (
        ff["FaceForensics++/FF-real/c23/001"]
        == ff["FaceForensics++/FF-DF/c23/001_000"]
        != ff[made_from_000[0]]
    )
    cdf = family(trees.celebdf(tmp_path / "rgb", tmp_path, tests=CDF_TESTS, n=2))
    assert cdf["Celeb-DF-v2/CelebDFv2_real/id5_0000"] == cdf["Celeb-DF-v2/CelebDFv2_fake/id5_id6_0000"]
    assert cdf["Celeb-DF-v2/CelebDFv2_real/id5_0000"] == "Celeb-DF-v2/id5"  # the celebrity
    assert cdf["Celeb-DF-v2/CelebDFv2_real/00001"] == "Celeb-DF-v2/youtube-00001"  # its own
    dfdc_index = family(trees.dfdc(tmp_path / "rgb", tmp_path, parts=2, n_test=2, n=2))
    assert all(f == vid for vid, f in dfdc_index.items())  # no `original` in the index: each its own
    dfdcp = family(trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=3, test_from=2, n=2))
    subject = [f"DFDCP/{label}/1002_{v}" for label, v in [("DFDCP_Real", "A_000"), ("DFDCP_FakeA", "A_001")]]
    assert {dfdcp[v] for v in subject} | {dfdcp["DFDCP/DFDCP_FakeB/1002_B_001"]} == {"DFDCP/1002"}
    assert len(set(dfdcp.values())) == 3


def test_compression_levels_one_at_a_time(tmp_path):
    files = trees.ffpp(tmp_path / "rgb", tmp_path, PAIRS, methods=("Deepfakes",), levels=("c23", "c40"), n=2)
    with pytest.warns(LayoutWarning, match="reading c23"):
        default = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=files["FaceForensics++"]))
    assert {e.compression for e in default} == {"c23"}
    c40 = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=files["FaceForensics++"], compression="c40"))
    assert {e.compression for e in c40} == {"c40"} and len(c40) == len(default)
    fake = next(e for e in c40 if e.label == 1)  # c40's masks are the listed c23 ones
    assert all("c23" in m.parts for m in fake.masks)
    with pytest.raises(LayoutError, match="no video at compression raw"):
        deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=files["FaceForensics++"], compression="raw"))


@pytest.mark.parametrize(
    ("index", "where"),
    [
        ({"DFDC": ["a"]}, "DFDC is a list"),
        (
            {"DFDC": {"DFDC_Real": {"train": {"v": {"label": "x", "frames": "0.png"}}}}},
            "DFDC/DFDC_Real/train/v/frames",
        ),
        ({"DFDC": {"DFDC_Real": {"train": {"v": ["0.png"]}}}}, "DFDC/DFDC_Real/train/v is a list"),
        ({"DFDC": {"DFDC_Real": {"training": {}}}}, "DFDC/DFDC_Real/training: expected a split"),
        (
            {"FF": {"FF-real": {"test": {"c23": {"v": {"frames": ["a.png"], "masks": 3}}}}}},
            "FF/FF-real/test/c23/v/masks",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_unreadable_index_is_one_layout_error_naming_the_key(tmp_path, index, where):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    with pytest.raises(LayoutError, match=where.replace("/", "/")):
        deepfakebench.scan(tmp_path, ScanOptions(index=path))
    assert (
        main(
            [
                "prep",
                "--layout",
                "deepfakebench",
                "--json",
                str(path),
                "--root",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )


def test_cli_reads_a_dfdc_index_and_reports_what_it_changed(tmp_path, capsys):
    index = trees.dfdc(tmp_path / "rgb", tmp_path, parts=4, per_part=2, n_test=2)
    out = tmp_path / "out"
    argv = ["prep", "--layout", "deepfakebench", "--json", str(index), "--root", str(tmp_path / "rgb")]
    assert main([*argv, "--out", str(out), "--frames", "2"]) == 0
    err = capsys.readouterr().err
    assert "warning: DFDC: ignored 4 keys" in err and "validation is carved" in err
    report = json.loads((out / "prep_report.json").read_text())
    assert {n["change"] for n in report["layout"]} >= {"stray keys ignored", "val carved from train"}
    assert report["splits"] == {
        "test": {"videos": 2, "done": 2},
        "train": {"videos": 6, "done": 6},
        "val": {"videos": 2, "done": 2},
    }
    df = pd.read_csv(out / "manifest.csv")
    assert sorted(df.frame_idx.unique()) == [0, 3]


def test_prep_refuses_a_video_listed_twice(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=2, test_from=1)
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index))
    with pytest.raises(ValueError, match="listed twice"):
        prep([*entries, entries[0]], tmp_path / "out", progress=False)


def test_a_part_made_under_another_split_is_made_again(tmp_path):
    """A folder prepped before this fix holds Celeb-DF test videos as train parts: a rerun must not
    skip them as finished, or their rows keep the leaked split."""
    index = trees.celebdf(tmp_path / "rgb", tmp_path, tests=CDF_TESTS)
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index))
    out = tmp_path / "out"
    as_train = [e.__class__(**{**e.__dict__, "split": "train"}) for e in entries]
    prep(as_train, out, progress=False)
    report = prep(entries, out, progress=False)
    assert report["videos"]["skipped_already_done"] == len(entries) - sum(e.split != "train" for e in entries)
    df = load_manifest(out)
    assert df.groupby("video_id")["split"].first().to_dict() == {e.video_id: e.split for e in entries}


def test_manifest_with_a_video_in_two_splits_is_refused(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=2, test_from=1)
    out = tmp_path / "out"
    prep(deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index)), out, progress=False)
    df = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    df.loc[df.index[0], "split"] = "train" if df.loc[df.index[0], "split"] == "test" else "test"
    df.to_csv(out / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="in more than one split"):
        load_manifest(out)


def _prepared_dfdcp(tmp_path, **options):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=2, test_from=1)
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index))
    prep(entries, tmp_path / "out", progress=False, **options)
    return entries, tmp_path / "out"


def _without_families(csv_path):
    df = pd.read_csv(csv_path, keep_default_na=False)
    df.drop(columns="family").to_csv(csv_path, index=False)


def test_a_manifest_without_families_reads_each_video_as_its_own_with_one_warning(tmp_path):
    _, out = _prepared_dfdcp(tmp_path)
    _without_families(out / "manifest.csv")  # as a manifest written before families
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_manifest(out)
    said = [w for w in caught if issubclass(w.category, FamilyWarning)]
    assert len(said) == 1 and str(out / "manifest.csv") in str(said[0].message)
    assert "each video is its own family" in str(said[0].message)
    assert (df["family"] == df["video_id"]).all() and list(df.columns).index("family") == 6


def test_a_folder_of_shards_without_families_warns_once(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=2, test_from=1)
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index))
    for i in range(2):
        prep(entries, tmp_path / "out", shard=(i, 2), progress=False)
        _without_families(tmp_path / "out" / f"manifest.shard-{i}-of-2.csv")
    with pytest.warns(FamilyWarning) as caught:
        df = load_manifest(tmp_path / "out")
    assert len(caught) == 1 and f"{tmp_path / 'out'} (2 of its 2 shards)" in str(caught[0].message)
    assert (df["family"] == df["video_id"]).all()


@pytest.mark.parametrize("missing", ["", "NaN", "None"])
def test_an_empty_family_is_refused_naming_the_row_and_the_column(tmp_path, missing):
    _, out = _prepared_dfdcp(tmp_path)
    df = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    df.loc[df.index[2], "family"] = missing
    df.to_csv(out / "manifest.csv", index=False)
    with pytest.raises(ValueError, match=rf"manifest\.csv: row 4, column family is '{missing}'"):
        load_manifest(out)


def test_a_video_in_two_families_is_refused(tmp_path):
    _, out = _prepared_dfdcp(tmp_path)
    df = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    df.loc[df.index[0], "family"] = "DFDCP/another"
    df.to_csv(out / "manifest.csv", index=False)
    with pytest.raises(ValueError, match=f"video {df.video_id[0]} is in more than one family"):
        load_manifest(out)


def test_prep_again_gives_old_parts_their_family_without_redoing_them(tmp_path):
    entries, out = _prepared_dfdcp(tmp_path)
    for e in entries:  # parts and manifest as prep wrote them before families
        part = json.loads(part_path(out, e.video_id).read_text())
        part["rows"] = [{k: v for k, v in row.items() if k != "family"} for row in part["rows"]]
        part_path(out, e.video_id).write_text(json.dumps(part))
    with pytest.raises(ValueError, match="a part written before prep recorded video families"):
        write_outputs(out, None, "", None)  # a merge cannot know the families
    report = prep(entries, out, progress=False)
    assert report["videos"]["skipped_already_done"] == len(entries)
    df = load_manifest(out)
    assert df.groupby("video_id")["family"].first().to_dict() == {e.video_id: e.family for e in entries}
    assert set(df["family"]) == {"DFDCP/1000", "DFDCP/1001"}


# 5a-c. Raw layouts: FF++ with some methods, split lists elsewhere, DFDC under train/.
@pytest.fixture
def ff_raw(tmp_path):
    root = tmp_path / "FaceForensics++"
    for split, ps in PAIRS.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / f"splits/{split}.json").write_text(json.dumps(ps))
    videos = [v for ps in PAIRS.values() for a, b in ps for v in (a, b)]
    for level in ("c23", "c40"):
        for v in videos:
            write_cv_video(root / f"original_sequences/youtube/{level}/videos/{v}.mp4", noise_frames(2, 16))
    fakes = [f"{a}_{b}" for ps in PAIRS.values() for a, b in ps] + [
        f"{b}_{a}" for ps in PAIRS.values() for a, b in ps
    ]
    for method, levels in (
        ("Deepfakes", ("c23", "c40")),
        ("Face2Face", ("c23",)),
    ):  # Face2Face/c40 not downloaded
        for level in levels:
            for v in fakes:
                write_cv_video(
                    root / f"manipulated_sequences/{method}/{level}/videos/{v}.mp4", noise_frames(2, 16)
                )
    return root


def test_ffpp_with_some_methods_downloaded(ff_raw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries = ffpp.scan(ff_raw, ScanOptions(compression="c40"))
    absent = [str(w.message) for w in caught if issubclass(w.category, LayoutWarning)]
    assert len(absent) == 4 and sum("Face2Face" in m for m in absent) == 1  # each named once
    assert {e.method for e in entries} == {"real", "Deepfakes"}
    assert {e.method for e in ffpp.scan(ff_raw, ScanOptions(methods=("Face2Face",)))} == {"real", "Face2Face"}
    with pytest.raises(LayoutError, match="Face2Face/c40/videos"):
        ffpp.scan(ff_raw, ScanOptions(compression="c40", methods=("Deepfakes", "Face2Face")))
    with pytest.raises(LayoutError, match="'DeepFakes'"):
        ffpp.scan(ff_raw, ScanOptions(methods=("DeepFakes",)))


def test_ffpp_cli_methods_and_split_folder(ff_raw, tmp_path, capsys):
    lists = tmp_path / "lists"
    (ff_raw / "splits").rename(lists)
    base = ["prep", "--layout", "ffpp", "--root", str(ff_raw), "--split", "test", "--frames", "1"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    assert "train.json" in capsys.readouterr().err
    assert main([*base, "--splits", str(lists), "--methods", "Face2Face", "--out", str(tmp_path / "b")]) == 0
    parts = [json.loads(p.read_text()) for p in (tmp_path / "b" / "parts").glob("*.json")]
    assert {p["video_id"].split("/")[1] for p in parts} == {"real", "Face2Face"} and len(parts) == 2 + 2
    for f in lists.iterdir():  # DeepfakeBench and SBI keep the lists beside the sequences
        f.rename(ff_raw / f.name)
    assert main([*base, "--methods", "Deepfakes", "--out", str(tmp_path / "c")]) == 0
    assert main([*base, "--methods", "Nope", "--out", str(tmp_path / "d")]) == 2
    assert "'Nope'" in capsys.readouterr().err


def test_dfdc_parts_under_a_train_folder(tmp_path):
    root = tmp_path / "DFDC"
    for part in range(3):
        meta = {
            f"r{part}.mp4": {"label": "REAL", "split": "train"},
            f"f{part}.mp4": {"label": "FAKE", "split": "train"},
        }
        (root / f"train/dfdc_train_part_{part}").mkdir(parents=True)
        (root / f"train/dfdc_train_part_{part}/metadata.json").write_text(json.dumps(meta))
    (root / "test").mkdir()
    (root / "test/labels.csv").write_text("filename,label\na.mp4,0\n")
    entries = dfdc.scan(root)
    assert _splits(entries) == {"train": 4, "val": 2, "test": 1}
    assert {e.video_id for e in entries if e.split == "val"} == {
        "DFDC/dfdc_train_part_2/r2",
        "DFDC/dfdc_train_part_2/f2",
    }
    assert (
        next(e.path for e in entries if e.video_id.endswith("/r0")) == root / "train/dfdc_train_part_0/r0.mp4"
    )


def test_celebdf_train_list_with_absolute_paths_from_elsewhere(tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    videos = ["Celeb-real/id0_0000.mp4", "Celeb-real/id1_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"]
    for rel in [*videos, "YouTube-real/00000.mp4"]:
        write_cv_video(root / rel, noise_frames(2, 16))
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n")
    listed = [f"T:\\data\\Celeb-DF-v2\\{rel.replace('/', chr(92))}" for rel in videos]
    listed[2] = f"/mnt/celeb/Celeb-DF-v2/{videos[2]}"
    (tmp_path / "train.json").write_text(json.dumps(listed))
    entries, notes = scan("celebdf", root, train_list=tmp_path / "train.json")
    kept = {str(e.path.relative_to(root)): e.split for e in entries}
    assert kept["Celeb-real/id0_0000.mp4"] == "test"  # listed for train, but on the test list
    assert {r for r, s in kept.items() if s != "test"} == set(videos[1:])  # YouTube-real/00000 not listed
    assert [n["videos"] for n in notes if n["change"] == "test videos removed from train"] == [1]


def _index(tmp_path, index):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    return path


def test_one_index_may_mix_path_styles(tmp_path):
    rgb = tmp_path / "rgb"
    styles = {"id0_0000": "relative", "id1_0000": "posix", "id2_0000": "windows", "id3_0000": "relative"}
    train = {}
    for v, style in styles.items():
        frames = trees.crops(rgb, f"Celeb-DF-v2/Celeb-real/frames/{v}", 2, style)
        if v == "id3_0000":  # relative, with a folder in front of the dataset's
            frames = [f"rgb/{f}" for f in frames]
        train[v] = {"label": "CelebDFv2_real", "frames": frames}
    entries = deepfakebench.scan(
        rgb, ScanOptions(index=_index(tmp_path, {"Celeb-DF-v2": {"CelebDFv2_real": {"train": train}}}))
    )
    assert len(entries) == 4 and all(p.is_file() for e in entries for p in e.frames)


def test_an_index_path_cannot_leave_root(tmp_path):
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    trees.crops(tmp_path, "outside/frames/v", 1)
    index = {"DFDCP": {"DFDCP_Real": {"train": {"v": {"frames": ["DFDCP/../../outside/frames/v/000.png"]}}}}}
    with pytest.raises(LayoutError, match="would leave --root"):
        deepfakebench.scan(rgb, ScanOptions(index=_index(tmp_path, index)))


@pytest.mark.parametrize(
    ("index", "where"),
    [
        (
            {"FF": {"FF-real": {"train": {"c23": {"a": {"frames": []}}, "b": {"frames": []}}}}},
            "FF/FF-real/train mixes compression levels",
        ),
        (
            {"FF": {"FF-real": {"train": {"c23": {"000": {"frames": []}}}, "test": {"000": {"frames": []}}}}},
            "one video would get two ids",
        ),
    ],
)
def test_levels_and_videos_do_not_mix(tmp_path, index, where):
    with pytest.raises(LayoutError, match=where):
        deepfakebench.scan(tmp_path, ScanOptions(index=_index(tmp_path, index)))


def test_a_video_under_two_names_is_not_trained_on_when_one_is_test(tmp_path):
    rgb = tmp_path / "rgb"
    frames = trees.crops(rgb, "Celeb-DF-v2/Celeb-real/frames/id0_0000", 2)
    other = trees.crops(rgb, "Celeb-DF-v2/Celeb-real/frames/id1_0000", 2)
    index = {
        "Celeb-DF-v2": {
            "CelebDFv2_real": {"train": {"id1_0000": {"frames": other}}},
            "CelebDFv2_fake": {
                "test": {"id0_0000": {"frames": frames}},
                "train": {"copy": {"frames": frames}},
            },
        }
    }
    entries, notes = scan("deepfakebench", rgb, index=_index(tmp_path, index))
    assert sorted((_name(e), e.split) for e in entries) == [("id0_0000", "test"), ("id1_0000", "train")]
    assert [n["videos"] for n in notes if n["change"] == "videos sharing test crops dropped"] == [1]


def test_a_failed_part_under_another_split_is_made_again(tmp_path):
    index = trees.dfdcp(tmp_path / "rgb", tmp_path, subjects=2, test_from=1)
    entries = deepfakebench.scan(tmp_path / "rgb", ScanOptions(index=index))
    gone = entries[0]
    for p in gone.frames:
        p.unlink()
    out = tmp_path / "out"
    moved = "train" if gone.split == "test" else "test"
    prep([gone.__class__(**{**gone.__dict__, "split": moved})], out, progress=False)
    report = prep([gone], out, progress=False)
    assert report["videos"]["skipped_already_done"] == 0
    assert report["splits"] == {gone.split: {"videos": 1, "done": 0}}


@pytest.mark.parametrize(
    ("text", "why"),
    [("[" * 100000 + "]" * 100000, "RecursionError"), ("{", "not valid JSON"), ("", "not valid JSON")],
)
def test_unparsable_index_is_one_layout_error(tmp_path, text, why):
    path = tmp_path / "index.json"
    path.write_text(text)
    with pytest.raises(LayoutError, match=why):
        deepfakebench.scan(tmp_path, ScanOptions(index=path))
    with pytest.raises(LayoutError, match="a folder; --json is the index file"):
        deepfakebench.scan(tmp_path, ScanOptions(index=tmp_path))


def test_masks_without_frame_numbers_pair_by_name(tmp_path):
    rgb = tmp_path / "rgb"
    for kind in ("frames", "masks"):
        (rgb / f"FF/{kind}/v").mkdir(parents=True)
        for n in ("a", "b"):
            (rgb / f"FF/{kind}/v/{n}.png").write_bytes(b"png")
    info = {
        "frames": ["FF/frames/v/a.png", "FF/frames/v/b.png"],
        "masks": ["FF/masks/v/b.png", "FF/masks/v/a.png"],
    }
    (e,) = deepfakebench.scan(
        rgb, ScanOptions(index=_index(tmp_path, {"FF": {"FF-DF": {"train": {"v": info}}}}))
    )
    assert [(f.name, m.name) for f, m in zip(e.frames, e.masks, strict=True)] == [
        ("a.png", "a.png"),
        ("b.png", "b.png"),
    ]
