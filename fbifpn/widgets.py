"""An ipywidgets explorer for JupyterLab: pick a video, slide through its frames, and see what the
detector sees (Grad-CAM, forgery attention per pyramid level, predicted mask, ground-truth mask),
with the video's score timeline and the current frame marked.

Model outputs (scores, masks, attention maps) are computed once per video and cached; Grad-CAM is
computed per (frame, level) on demand and cached too, so moving the slider stays responsive.
Crops are read through the dataset's eval transform and scored by `score_images`, as `eval` and
`detect` score them; a folder of videos is cut by prep with the model's training crop geometry
(`Explorer.from_checkpoint` takes it, the input size and flip TTA from the checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from fbifpn import atomic
from fbifpn.data.dataset import FrameDataset
from fbifpn.data.manifest import load_manifest
from fbifpn.data.prep import PrepOptions, prepare_folder
from fbifpn.engine.evaluate import score_images
from fbifpn.explain import denormalise, gradcam, model_maps, neck_layer, overlay

OVERLAYS = ("CAM", "attention", "predicted mask", "ground-truth mask", "none")


class Explorer:
    def __init__(
        self,
        model,
        manifest: pd.DataFrame | Path | str,
        image_size: int,
        split: str | None = None,
        detector: str | None = None,
        tta_flip: bool = False,
        prep_options: PrepOptions | None = None,
    ):
        """`manifest`: a manifest (DataFrame, CSV or prep folder), or a plain folder of videos, whose
        faces are then cropped once into a cache (with `detector`, or their sidecars), cut with the
        size, scale and alignment of `prep_options` (prep's defaults when None): those the model's
        training crops were cut with. `tta_flip` as the checkpoint's eval.tta_flip scores as eval."""
        import ipywidgets as w

        self.model = model.eval()
        self.tta_flip = tta_flip
        if not isinstance(manifest, pd.DataFrame):
            source = Path(manifest)
            if source.is_dir() and not (
                (source / "manifest.csv").is_file() or any(source.glob("manifest.shard-*"))
            ):
                geometry = prep_options or PrepOptions()
                manifest = prepare_folder(
                    source,
                    detector=detector,
                    progress=False,
                    size=geometry.size,
                    scale=geometry.scale,
                    align=geometry.align,
                )
        df = manifest if isinstance(manifest, pd.DataFrame) else load_manifest(Path(manifest))
        if split is not None:
            df = df[df["split"] == split]
        self.frames = FrameDataset(df, image_size, model.mean, model.std, frames_per_video=1)
        self.videos = {rows["video_id"].iloc[0]: rows for rows in self.frames.videos}
        self.cache: dict[str, dict] = {}
        self.cams: dict[tuple[str, int, int], np.ndarray] = {}
        levels = list(getattr(model.neck, "levels", [0])) if hasattr(model, "neck") else [0]
        self.video = w.Dropdown(options=list(self.videos), description="video")
        self.frame = w.IntSlider(min=0, max=0, description="frame", continuous_update=False)
        self.level = w.Dropdown(options=levels, value=levels[0], description="level")
        self.kind = w.ToggleButtons(options=OVERLAYS, value="CAM", description="overlay")
        self.opacity = w.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="opacity")
        self.threshold = w.FloatSlider(value=0.0, min=0, max=1, step=0.05, description="threshold")
        self.image = w.Image(format="png", layout=w.Layout(width="320px"))
        self.timeline = w.Image(format="png", layout=w.Layout(width="480px"))
        self.label = w.HTML()
        for control in (self.video, self.frame, self.level, self.kind, self.opacity, self.threshold):
            control.observe(lambda _: self.render(), names="value")
        self.video.observe(lambda _: self._video_changed(), names="value")
        self._video_changed()
        controls = w.VBox([self.video, self.frame, self.level, self.kind, self.opacity, self.threshold])
        self.widget = w.HBox([controls, w.VBox([self.image, self.timeline, self.label])])

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Path | str,
        manifest: pd.DataFrame | Path | str,
        split: str | None = None,
        detector: str | None = None,
    ) -> Explorer:
        """An explorer that sees and scores faces as `eval` and `detect` do with this checkpoint:
        its input size, its flip TTA, and for a folder of videos its recorded crop geometry."""
        from fbifpn.detect import FaceScorer

        scorer = FaceScorer(Path(checkpoint))
        return cls(
            scorer.model,
            manifest,
            scorer.cfg.data.image_size,
            split=split,
            detector=detector,
            tta_flip=scorer.cfg.eval.tta_flip,
            prep_options=scorer.prep_options,
        )

    def _video_changed(self) -> None:
        self.frame.max = len(self.videos[self.video.value]) - 1
        self.frame.value = min(self.frame.value, self.frame.max)
        self.render()

    def outputs(self, video_id: str) -> dict:
        """Every frame's tensor, score and model maps for one video, computed once."""
        if video_id not in self.cache:
            rows = self.videos[video_id]
            samples = [self.frames.load(rows.iloc[k]) for k in range(len(rows))]
            images = torch.stack([s["image"] for s in samples])
            scores = score_images(self.model, images, self.tta_flip).score.numpy()
            self.cache[video_id] = {
                "images": images,
                "scores": scores,
                "maps": model_maps(self.model, images),
                "masks": [s["mask"][0].numpy() for s in samples],
            }
        return self.cache[video_id]

    def heat(self, video_id: str, t: int) -> np.ndarray | None:
        out, kind = self.outputs(video_id), self.kind.value
        if kind == "CAM":
            key = (video_id, t, self.level.value)
            if key not in self.cams:
                self.cams[key] = gradcam(
                    self.model, out["images"][t : t + 1], neck_layer(self.model, self.level.value)
                )[0]
            return self.cams[key]
        if kind == "attention":
            return out["maps"].get(f"attention/{self.level.value}", [None] * (t + 1))[t]
        if kind == "predicted mask":
            return out["maps"]["mask"][t] if "mask" in out["maps"] else None
        if kind == "ground-truth mask":
            return out["masks"][t]
        return None

    def frame_png(self) -> bytes:
        video_id, t = self.video.value, self.frame.value
        out = self.outputs(video_id)
        rgb = denormalise(out["images"][t], self.model.mean, self.model.std)
        heat = self.heat(video_id, t)
        if heat is not None and self.opacity.value > 0:
            heat = np.where(heat >= self.threshold.value, heat, 0)
            rgb = overlay(rgb, heat, image_weight=1 - self.opacity.value)
        return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()

    def timeline_png(self, width: int = 480, height: int = 110) -> bytes:
        """Fake probability per frame, the current frame marked in red."""
        scores = self.outputs(self.video.value)["scores"]
        img = np.full((height, width, 3), 255, np.uint8)
        n = len(scores)
        xs = [int(10 + (width - 20) * (i / max(1, n - 1))) for i in range(n)]
        ys = [int(height - 10 - (height - 20) * s) for s in scores]
        cv2.line(img, (10, height // 2), (width - 10, height // 2), (210, 210, 210), 1)
        cv2.polylines(
            img, [np.array(list(zip(xs, ys, strict=True)), np.int32)], False, (60, 60, 60), 2, cv2.LINE_AA
        )
        t = self.frame.value
        cv2.circle(img, (xs[t], ys[t]), 6, (0, 0, 255), -1, cv2.LINE_AA)
        return cv2.imencode(".png", img)[1].tobytes()

    def render(self) -> None:
        out = self.outputs(self.video.value)
        row = self.videos[self.video.value].iloc[self.frame.value]
        self.image.value = self.frame_png()
        self.timeline.value = self.timeline_png()
        self.label.value = (
            f"<b>{self.video.value}</b> frame {int(row['frame_idx'])}: fake probability "
            f"<b>{out['scores'][self.frame.value]:.3f}</b> (label {int(row['label'])}, "
            f"{row['method']})"
        )

    def select(self, video_id: str | None = None, frame: int | None = None, kind: str | None = None) -> None:
        """Set the controls from code (what a batch run shows); None keeps a control as it is."""
        if video_id is not None:
            self.video.value = video_id
        if frame is not None:
            self.frame.value = max(0, min(frame, self.frame.max))
        if kind is not None:
            self.kind.value = kind

    def snapshot_rgb(self, side: int = 224) -> np.ndarray:
        """The current view as one RGB image, what a batch run shows instead of the widget: the crop
        and its overlay side by side, the score timeline below, and the caption under it."""
        video_id, t = self.video.value, self.frame.value
        out = self.outputs(video_id)
        crop = cv2.cvtColor(denormalise(out["images"][t], self.model.mean, self.model.std), cv2.COLOR_RGB2BGR)
        shown = cv2.imdecode(np.frombuffer(self.frame_png(), np.uint8), cv2.IMREAD_COLOR)
        top = np.hstack(
            [cv2.resize(im, (side, side), interpolation=cv2.INTER_NEAREST) for im in (crop, shown)]
        )
        line = cv2.imdecode(np.frombuffer(self.timeline_png(width=2 * side), np.uint8), cv2.IMREAD_COLOR)
        row = self.videos[video_id].iloc[t]
        caption = np.full((44, 2 * side, 3), 255, np.uint8)
        texts = [
            f"{video_id}",
            f"frame {int(row['frame_idx'])}, {self.kind.value}: p(fake) {out['scores'][t]:.3f} "
            f"(label {int(row['label'])}, {row['method']})",
        ]
        for i, text in enumerate(texts):
            cv2.putText(
                caption, text[:64], (4, 16 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
            )
        return cv2.cvtColor(np.vstack([top, line, caption]), cv2.COLOR_BGR2RGB)

    def snapshot(self, path: Path) -> Path:
        """The current view written as a PNG."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_image(path, cv2.cvtColor(self.snapshot_rgb(), cv2.COLOR_RGB2BGR))
        return Path(path)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
