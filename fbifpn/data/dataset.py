"""FrameDataset: face crops from a manifest as the batch dict of design.md.

Each video contributes K frames per epoch, evenly spaced with an offset drawn anew every epoch, so a
long training run sees every part of every video. Every random choice (the offset, the SBI fake,
each augmentation) is drawn from `(seed, epoch, index)`: a resumed run, or a different number of
DataLoader workers, sees exactly the same samples. Augmentations move image and mask together.

`fakes` (config `train.fakes`) picks what the fakes are: `dataset` (the manifest's own), `sbi`
(self-blended versions of the real crops, each next to its real), or `both`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from fbifpn.data.manifest import load_manifest
from fbifpn.data.sbi import self_blend
from fbifpn.data.video import evenly_spaced


def slot_positions(n: int, k: int, offset: float | None = None) -> list[int]:
    """Which of n crops fill k slots: evenly spaced (first and last included), or, with an offset in
    [0, 1), the k strata of the video each entered `offset` of the way in. Short videos repeat."""
    if k >= n:
        return [i % n for i in range(k)]
    if offset is None:
        return evenly_spaced(n, k)
    return [min(n - 1, int((j + offset) * n / k)) for j in range(k)]


def _to_input_size(image: np.ndarray, image_size: int) -> np.ndarray:
    """One resize to image_size x image_size: INTER_AREA when shrinking (it averages rather than
    skips pixels, so no aliasing), INTER_LINEAR when enlarging."""
    h, w = image.shape[:2]
    if (h, w) == (image_size, image_size):
        return image
    interpolation = cv2.INTER_AREA if h > image_size else cv2.INTER_LINEAR
    return cv2.resize(image, (image_size, image_size), interpolation=interpolation)


def model_input(crop: np.ndarray, image_size: int, mean, std) -> torch.Tensor:
    """A BGR uint8 crop (as prep writes it and cv2 reads it) as the model's input: float32
    [3, image_size, image_size], resized, RGB, normalised with the model's `mean` and `std` (3 each).
    What FrameDataset gives at eval; `detect` and the explorer feed crops through it too, so every
    entry point scores the same tensor."""
    rgb = cv2.cvtColor(_to_input_size(crop, image_size), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    rgb = (rgb - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


SBI_SUFFIX = "/sbi"  # the video id of the self-blended fakes made from a real video's crops


@dataclass(frozen=True)
class Augment:
    """Training augmentations; each applies with its probability to image and mask alike."""

    flip: float = 0.5
    crop_jitter: float = 0.1  # crop up to this fraction away, then resize back
    colour: float = 0.1  # brightness / contrast / saturation jitter amplitude
    jpeg: float = 0.3  # probability of a JPEG round trip
    jpeg_quality: tuple[int, int] = (60, 100)


@dataclass(frozen=True)
class Item:
    video: int  # index into the dataset's video list
    slot: int  # which of the K frames
    sbi: bool  # a self-blended fake made from this real crop


class FrameDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        manifest: pd.DataFrame | Path | str,
        image_size: int,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
        split: str | None = None,
        frames_per_video: int = 8,
        train: bool = False,
        fakes: str = "dataset",
        seed: int = 0,
        augment: Augment | None = None,
        strict: bool = False,
    ):
        df = manifest if isinstance(manifest, pd.DataFrame) else load_manifest(Path(manifest))
        if split is not None:
            df = df[df["split"] == split]
        # Rows whose crop or mask is missing are reported and skipped (or, strict, fail the run).
        self.strict = strict
        self.skipped: list[dict] = []
        present = []
        for image, mask in zip(df["image"], df["mask"], strict=True):
            missing = next((p for p in (image, mask) if p and not os.path.exists(p)), None)
            if missing and strict:
                raise FileNotFoundError(f"{missing}: listed in the manifest, not found (data.strict=true)")
            if missing:
                self.skipped.append({"file": missing, "reason": "listed in the manifest, not found"})
            present.append(missing is None)
        df = df[present]
        if fakes not in ("dataset", "sbi", "both"):
            raise ValueError(f"train.fakes: {fakes!r} is not one of dataset, sbi, both")
        if fakes == "sbi":
            df = df[df["label"] == 0]
        if df.empty and self.skipped:
            raise FileNotFoundError(
                f"split {split!r}: the crops of all {len(self.skipped)} of its manifest rows are missing "
                f"(first: {self.skipped[0]['file']}); was the prep folder moved or deleted?"
            )
        if df.empty:
            raise ValueError(f"the manifest has no rows for split {split!r} with fakes={fakes!r}")
        self.videos = [g.reset_index(drop=True) for _, g in df.groupby("video_id", sort=True)]
        self.image_size = image_size
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.k = frames_per_video
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.augment = augment if augment is not None else (Augment() if train else None)
        sbi_too = fakes in ("sbi", "both")
        self.items = [
            Item(v, k, sbi)
            for v, rows in enumerate(self.videos)
            for k in range(self.k)
            for sbi in ((False, True) if sbi_too and rows["label"].iloc[0] == 0 else (False,))
        ]

    def set_epoch(self, epoch: int) -> None:
        """Frames are resampled per epoch: call before each epoch (the DataLoader's sampler does too)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def labels(self) -> list[int]:
        """Each sample's label in index order (a self-blended fake is 1), read without loading a crop."""
        return [1 if item.sbi else int(self.videos[item.video]["label"].iloc[0]) for item in self.items]

    def sbi_pairs(self) -> list[tuple[int, int]]:
        """(real, its self-blended fake) index pairs in index order; empty unless `fakes` makes SBI
        fakes. Each SBI sample is built right after the real crop it blends."""
        return [(i - 1, i) for i, item in enumerate(self.items) if item.sbi]

    def frame_row(self, item: Item) -> pd.Series:
        """K evenly spaced crops of the video; in training, shifted by an offset drawn per epoch."""
        rows = self.videos[item.video]
        offset = np.random.default_rng([self.seed, self.epoch, item.video]).uniform() if self.train else None
        return rows.iloc[slot_positions(len(rows), self.k, offset)[item.slot]]

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        return self.load(self.frame_row(item), index, item.sbi)

    def load(self, row: pd.Series, index: int = 0, sbi: bool = False) -> dict:
        """One crop of the manifest as a sample (augmented when training, SBI-blended when `sbi`)."""
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, index])  # eval: fixed
        image = self.read(row)
        if image is None:
            row, image = self._readable_neighbour(row)
        mask = np.zeros(image.shape[:2], np.float32)
        if row["mask"]:
            loaded = cv2.imread(row["mask"], cv2.IMREAD_GRAYSCALE)
            if loaded is None:
                raise OSError(f"{row['mask']}: cannot read the mask (listed in the manifest)")
            mask = loaded.astype(np.float32) / 255
        label, has_mask, method = float(row["label"]), bool(row["has_mask"]), row["method"]
        if sbi:
            image, mask = self_blend(image, rng, landmarks=self._hull(row), box=self._box(row, image.shape))
            label, has_mask, method = 1.0, True, "SBI"
        # Geometry first and straight to the input size, so the photometric work and the JPEG round
        # trip touch image_size**2 pixels, not the crop's (4x fewer for 256 px crops fed at 128).
        # Without augmentation this is model_input(crop) exactly: its own resize then has nothing to do.
        image, mask = self._geometry(image, mask, rng)
        if self.augment is not None:
            image = self._photometric(image, rng)
        return {
            "image": model_input(image, self.image_size, self.mean, self.std),
            "label": torch.tensor(label, dtype=torch.float32),
            "mask": torch.from_numpy(np.ascontiguousarray(mask))[None],
            "has_mask": torch.tensor(has_mask),
            # a self-blended fake is a video of its own: scored apart from the real it was made of
            "video_id": f"{row['video_id']}{SBI_SUFFIX}" if sbi else row["video_id"],
            "frame_idx": int(row["frame_idx"]),
            "face_idx": int(row["face_idx"]),
            "dataset": row["dataset"],
            "method": method,
        }

    def read(self, row: pd.Series) -> np.ndarray | None:
        """The row's crop, BGR uint8; None when it cannot be read. (Robustness tests perturb it here.)"""
        return cv2.imread(row["image"], cv2.IMREAD_COLOR)

    def _readable_neighbour(self, row: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """An unreadable crop is reported and replaced by the next readable crop of its video."""
        if self.strict:
            raise OSError(f"{row['image']}: cannot read the crop (data.strict=true)")
        warnings.warn(f"{row['image']}: cannot read the crop; using another frame of its video", stacklevel=3)
        rows = next(v for v in self.videos if v["video_id"].iloc[0] == row["video_id"])
        for _, other in rows.iterrows():
            image = self.read(other)
            if image is not None:
                return other, image
        raise OSError(f"{row['video_id']}: no crop of this video can be read")

    @staticmethod
    def _hull(row: pd.Series) -> np.ndarray | None:
        """The face contour when prep stored one (8+ points); 5 landmarks only span the inner face."""
        if not row["landmarks"]:
            return None
        points = np.load(row["landmarks"])
        return points if len(points) >= 8 else None

    @staticmethod
    def _box(row: pd.Series, shape: tuple[int, ...]) -> tuple[float, ...]:
        box = tuple(float(row[c]) for c in ("crop_x0", "crop_y0", "crop_x1", "crop_y1"))
        if any(np.isnan(box)):  # crops read in place (DeepfakeBench): the face fills the crop
            h, w = shape[:2]
            return (0.15 * w, 0.1 * h, 0.85 * w, 0.95 * h)
        return box

    def _geometry(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flip and crop jitter (when training), then one resize of image and mask to the input size."""
        a = self.augment
        h, w = mask.shape
        y0, x0, ch, cw = 0, 0, h, w
        if a is not None and rng.uniform() < a.flip:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if a is not None and a.crop_jitter > 0:
            s = 1 - rng.uniform(0, a.crop_jitter)
            ch, cw = round(h * s), round(w * s)
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image, mask = image[y0 : y0 + ch, x0 : x0 + cw], mask[y0 : y0 + ch, x0 : x0 + cw]
        image, mask = _to_input_size(image, self.image_size), _to_input_size(mask, self.image_size)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def _photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = self.augment
        if a.colour > 0:
            out = image.astype(np.float32)
            out = (out - out.mean()) * (1 + rng.uniform(-a.colour, a.colour)) + out.mean()  # contrast
            out *= 1 + rng.uniform(-a.colour, a.colour)  # brightness
            grey = out.mean(axis=2, keepdims=True)
            out = grey + (out - grey) * (1 + rng.uniform(-a.colour, a.colour))  # saturation
            image = np.clip(out, 0, 255).astype(np.uint8)
        if rng.uniform() < a.jpeg:
            quality = int(rng.integers(a.jpeg_quality[0], a.jpeg_quality[1] + 1))
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return np.ascontiguousarray(image)
