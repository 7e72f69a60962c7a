import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

from fbifpn import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "report.json", "old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    with pytest.raises(OSError, match="nothing was written"), atomic.replacing(target):
        pass  # a writer that made no file (OpenCV given no frame) must not replace the target
    assert target.read_text() == "old"


def test_every_writer_replaces_whole_and_keeps_the_usual_permissions(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    written = [
        atomic.write_text(tmp_path / "t" / "a.txt", "x"),  # makes the folder
        atomic.write_csv(df, tmp_path / "a.csv"),
        atomic.save_torch({"w": torch.ones(2)}, tmp_path / "a.pt"),
        atomic.write_image(tmp_path / "a.png", np.full((4, 4, 3), 7, np.uint8)),
    ]
    umask = os.umask(0)
    os.umask(umask)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
        assert atomic.orphans_of(path) == []
    assert pd.read_csv(written[1]).equals(df)
    assert torch.load(written[2])["w"].sum() == 2


def test_an_image_that_cannot_be_encoded_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(OSError, match=r"a\.png: cannot write"):
        atomic.write_image(tmp_path / "a.png", np.zeros((4, 4, 7), np.uint8))  # 7 channels
    assert list(tmp_path.iterdir()) == []


def test_orphans_are_those_of_this_file_only(tmp_path):
    target = tmp_path / "last.pt"
    left = [atomic.temp_beside(target), atomic.temp_beside(target)]
    others = [atomic.temp_beside(tmp_path / "best.pt"), tmp_path / "last.pt.txt", tmp_path / ".last.pt"]
    for p in left + others:
        p.write_text("")
    assert atomic.orphans_of(target) == sorted(left)
    assert all(p.suffix == ".pt" and p.name.startswith(".last.pt.") for p in left)
