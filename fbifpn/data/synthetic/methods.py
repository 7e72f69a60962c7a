"""The four manipulation methods, named like FaceForensics++'s, each leaving its own kind of trace.

Every method pastes generated content G onto the *real* video's frames R through a soft mask m:
`F = R (1 - m) + G m`. Outside the mask the fake is the real video to the bit (before compression),
and m is written out as the exact mask video.

- Deepfakes: the inner face of another identity, rendered at low resolution, colour-corrected only
  in part, soft-blended, with a little frame-to-frame jitter (an autoencoder's flicker).
- Face2Face: the target's own eyes, brows and mouth re-rendered with a driver's expressions.
- FaceSwap: the whole face hull of another identity, scale slightly off, colours uncorrected and
  a narrow feather that leaves a visible boundary.
- NeuralTextures: the mouth region re-synthesised with a driver's mouth motion: smoothed texture
  with a faint upsampling (checkerboard) pattern.

The `quality` knob lets other domains (synth-cdf's better blending) reuse the same methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from fbifpn.data.synthetic.faces import Expression, Identity, pose_matrix, region_masks, warp
from fbifpn.data.synthetic.scenes import Scene, lens, render_head


@dataclass(frozen=True)
class Blend:
    """How carefully a method hides its work; sampled per video."""

    feather: float  # Gaussian sigma of the mask edge, canvas pixels
    colour_fix: float  # 0 no colour correction .. 1 mean colour matched to the target
    low_res: float  # downscale factor of the generated face (1: none)
    jitter: float  # per-frame placement jitter, frame pixels
    scale_error: float  # relative size error of the pasted face
    tone: float = 0.0  # colour offset of re-rendered content (a renderer never matches the camera)


def sample_blend(rng: np.random.Generator, method: str, quality: float = 0.0) -> Blend:
    """`quality` in [0, 1] moves every knob towards an invisible blend (used by synth-cdf)."""
    q = quality
    base = {
        "Deepfakes": Blend(
            rng.uniform(4, 8), rng.uniform(0.3, 0.7), rng.uniform(2.0, 3.5), rng.uniform(0.3, 0.9), 0.0
        ),
        "Face2Face": Blend(
            rng.uniform(3, 6), 1.0, rng.uniform(2.0, 3.0), rng.uniform(0.0, 0.4), 0.0, rng.uniform(4, 9)
        ),
        "FaceSwap": Blend(
            rng.uniform(0.8, 1.8),
            rng.uniform(0.0, 0.3),
            rng.uniform(1.0, 1.5),
            rng.uniform(0.2, 0.6),
            rng.uniform(0.02, 0.05) * rng.choice([-1, 1]),
        ),
        "NeuralTextures": Blend(rng.uniform(3, 6), 1.0, rng.uniform(1.5, 2.5), 0.0, 0.0, rng.uniform(3, 7)),
    }[method]
    return Blend(
        feather=base.feather * (1 + q),
        colour_fix=base.colour_fix + q * (1 - base.colour_fix),
        low_res=1 + (base.low_res - 1) * (1 - 0.7 * q),
        jitter=base.jitter * (1 - q),
        scale_error=base.scale_error * (1 - q),
        tone=base.tone * (1 - q),
    )


def _low_res(image: np.ndarray, factor: float) -> np.ndarray:
    if factor <= 1.05:
        return image
    s = image.shape[0]
    small = cv2.resize(image, (max(8, int(s / factor)),) * 2, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)


def _match_colour(generated: np.ndarray, real: np.ndarray, mask: np.ndarray, amount: float) -> np.ndarray:
    w = mask[..., None]
    total = w.sum() + 1e-6
    shift = (real * w).sum((0, 1)) / total - (generated * w).sum((0, 1)) / total
    return generated + amount * shift


def _checkerboard(size: int, period: int, amplitude: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (((yy // period + xx // period) % 2) * 2 - 1).astype(np.float32)[..., None] * amplitude


def _swapped(
    target: Identity, source: Identity, ex: Expression, driver: Expression
) -> tuple[Identity, Expression]:
    return source, ex


def _reenacted(eyes_too: bool):
    def content(
        target: Identity, source: Identity, ex: Expression, driver: Expression
    ) -> tuple[Identity, Expression]:
        new = replace(ex, mouth_open=driver.mouth_open)
        if eyes_too:
            new = replace(new, eye_open=driver.eye_open, brow_raise=driver.brow_raise, gaze=driver.gaze)
        return target, new

    return content


# method -> (who is rendered with which expression, the canonical region pasted)
CONTENT: dict[str, tuple[Callable[..., tuple[Identity, Expression]], str]] = {
    "Deepfakes": (_swapped, "inner"),
    "Face2Face": (_reenacted(eyes_too=True), "expression"),
    "FaceSwap": (_swapped, "face"),
    "NeuralTextures": (_reenacted(eyes_too=False), "mouth"),
}
METHODS = tuple(CONTENT)


def manipulate(
    method: str,
    scene: Scene,
    target: Identity,
    real: list[np.ndarray],
    source: Identity,
    driver: list[Expression],
    blend: Blend,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Fake frames (BGR uint8) and their exact masks (uint8, 255 = fully replaced)."""
    make_content, region = CONTENT[method]
    fakes, masks = [], []
    texture = _checkerboard(scene.size, int(rng.integers(2, 4)), rng.uniform(4, 8))
    tone = rng.normal(0, 1, 3).astype(np.float32)
    tone *= blend.tone / (np.linalg.norm(tone) + 1e-6)
    for t, (ex, pose) in enumerate(zip(scene.expressions, scene.poses, strict=True)):
        identity, expression = make_content(target, source, ex, driver[t])
        # The mask follows the target's face (where the paste lands), drawn for the pasted
        # expression too, so that a mouth opened by the driver stays inside it.
        hard = np.maximum(region_masks(target, ex)[region], region_masks(target, expression)[region])
        soft = cv2.GaussianBlur(hard, (0, 0), blend.feather)
        if region != "face":  # feathered inwards only: inner regions never spill past their outline
            soft *= hard
        placed = replace(
            pose,
            cx=pose.cx + rng.normal(0, blend.jitter),
            cy=pose.cy + rng.normal(0, blend.jitter),
            scale=pose.scale * (1 + blend.scale_error),
        )
        head, _ = render_head(scene, identity, expression, placed)
        generated = lens(scene, _low_res(head, blend.low_res), t)
        m = np.clip(warp(soft, pose_matrix(pose), scene.size), 0, 1)
        m = np.round(m * 255) / 255  # the written mask is exact: blend with what is stored
        r = real[t].astype(np.float32)
        generated = _match_colour(generated, r, m, blend.colour_fix) + tone
        if method == "NeuralTextures":
            generated = cv2.GaussianBlur(generated, (0, 0), 1.5) + texture
        fake = r * (1 - m[..., None]) + generated * m[..., None]
        fakes.append(np.clip(np.round(fake), 0, 255).astype(np.uint8))
        masks.append(np.round(m * 255).astype(np.uint8))
    return fakes, masks
