"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a fake made from one real frame.

A copy of the frame (the source) is given a colour and frequency change and a slight affine shift,
then blended back into the frame through a deformed, blurred face mask. The result carries the
generic traces of face blending (a boundary, a colour and frequency mismatch) without any particular
manipulation method, and its blend mask is the exact forgery-location label.

Works on whole frames or on crops: `landmarks` (the face contour, or any points whose hull is the
face) or `box` are in the given image's coordinates. Only the source is transformed, so the image is
unchanged wherever the returned mask is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's choice: full blends twice as likely


def face_mask(
    shape: tuple[int, int], landmarks: np.ndarray | None = None, box: Sequence[float] | None = None
) -> np.ndarray:
    """Hard float mask: the convex hull of the landmarks, or else the ellipse inscribed in the box."""
    mask = np.zeros(shape, np.float32)
    if landmarks is not None and len(landmarks) >= 3:
        hull = cv2.convexHull(np.round(np.asarray(landmarks, np.float32)).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
    elif box is not None:
        x0, y0, x1, y1 = box
        centre = (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2)))
        axes = (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2))))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    else:
        raise ValueError("self_blend needs landmarks (3 or more points) or a face box")
    return mask


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift, hue/saturation/value shift (each with probability 0.3), brightness and contrast."""
    out = image.astype(np.float32)
    if rng.uniform() < 0.3:
        out += rng.uniform(-20, 20, 3).astype(np.float32)
    if rng.uniform() < 0.3:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-0.3, 0.3) * 30) % 180
        hsv[..., 1:] *= 1 + rng.uniform(-0.3, 0.3, 2).astype(np.float32)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    alpha = 1 + rng.uniform(-0.1, 0.1)  # contrast
    beta = rng.uniform(-0.1, 0.1) * 255  # brightness
    return out * alpha + beta


def _frequency(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Either a down-and-up scaling (lost detail) or a sharpening (exaggerated detail)."""
    h, w = image.shape[:2]
    if rng.uniform() < 0.5:
        f = rng.uniform(2, 4)
        small = cv2.resize(image, (max(4, int(w / f)), max(4, int(h / f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    amount = rng.uniform(0.2, 0.5)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0)
    return image + amount * 2 * (image - blurred)


def _affine(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shift (up to 3 % across, 1.5 % down) and scale (0.95-1.05) source and mask together."""
    h, w = mask.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, rng.uniform(0.95, 1 / 0.95))
    m[:, 2] += (rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.015, 0.015) * h)
    warp = lambda x: cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)  # noqa: E731
    return warp(image), warp(mask)


def _elastic(mask: np.ndarray, rng: np.random.Generator, alpha: float = 50, sigma: float = 7) -> np.ndarray:
    """Elastic deformation of the mask outline: a smooth random displacement field."""
    h, w = mask.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _two_stage_blur(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, keep only the fully inside part, blur again: a soft edge that starts inside the face."""
    k1, k2 = (int(rng.choice(np.arange(5, 26, 2))) for _ in range(2))
    soft = cv2.GaussianBlur(mask, (k1, k1), 0)
    soft = soft / max(float(soft.max()), 1e-6)
    soft[soft < 1] = 0
    soft = cv2.GaussianBlur(soft, (k2, k2), float(rng.integers(5, 46)))
    return soft / max(float(soft.max()), 1e-6)


def self_blend(
    image: np.ndarray,
    rng: np.random.Generator,
    landmarks: np.ndarray | None = None,
    box: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the self-blended image (uint8, like `image`) and its soft blend mask (float32 in [0, 1])."""
    hull = face_mask(image.shape[:2], landmarks, box)
    source = _frequency(_colour(image, rng), rng)
    source, hull = _affine(source, hull, rng)
    mask = _two_stage_blur(_elastic(hull, rng), rng) * rng.choice(BLEND_RATIOS)
    mask = np.clip(mask, 0, 1).astype(np.float32)
    m = mask[..., None]
    blended = np.clip(np.round(source * m + image.astype(np.float32) * (1 - m)), 0, 255).astype(np.uint8)
    return np.where(m > 0, blended, image), mask
