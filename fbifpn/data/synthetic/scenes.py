"""Filming a procedural identity: background, light, head motion, expressions and camera.

A `Scene` holds what is fixed for one video; `film` renders its frames. The camera (focus blur,
exposure, white balance, vignetting, sensor noise) varies from video to video as much as real
recordings do, so that no whole-frame statistic (brightness, colour balance, sharpness, file size)
tells a manipulated video from a real one: only the face does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fbifpn.data.synthetic.faces import (
    CANVAS,
    Expression,
    Identity,
    Pose,
    face_contour,
    landmarks,
    pose_matrix,
    render_canvas,
    shading_map,
    transform,
    warp,
)


@dataclass(frozen=True)
class Domain:
    """What distinguishes one synthetic dataset from another (the cross-dataset shift)."""

    name: str
    skin_weights: tuple[float, ...]
    light_strength: tuple[float, float]
    tint: float  # strength of coloured light / white-balance error
    noise: tuple[float, float]  # sensor noise sigma range
    focus: tuple[float, float]  # focus blur sigma range
    face_ratio: tuple[float, float] = (0.4, 0.6)  # face height / frame side


@dataclass
class Scene:
    size: int
    frames: int
    background: np.ndarray  # [size + 2m, size + 2m, 3] float, panned by the camera shake
    light: np.ndarray  # unit vector
    ambient: float
    gain: float
    tint: np.ndarray  # per-channel gain
    focus: float
    noise: float
    vignette: float
    poses: list[Pose]
    expressions: list[Expression]
    shake: np.ndarray  # [frames, 2] background offset
    flicker: np.ndarray  # [frames]
    noise_seed: int
    shades: dict[int, np.ndarray] = field(default_factory=dict)  # id(identity) -> shading map

    def shading(self, idt: Identity) -> np.ndarray:
        key = id(idt)
        if key not in self.shades:
            self.shades[key] = shading_map(idt, self.light)
        return self.shades[key]


MARGIN = 8


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """A room-like backdrop: a colour gradient, blotchy texture at a random scale, a few objects."""
    base = rng.uniform(40, 210, 3)
    other = np.clip(base + rng.normal(0, 45, 3), 10, 245)
    t = np.linspace(0, 1, side, dtype=np.float32)
    angle = rng.uniform(0, np.pi)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    bg = base + ramp[..., None] * (other - base)
    for _ in range(int(rng.integers(0, 5))):
        colour = np.clip(base + rng.normal(0, 60, 3), 0, 255)
        x0, y0 = rng.integers(0, side, 2)
        w, h = rng.integers(side // 10, side // 2, 2)
        cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(c) for c in colour), -1)
    scale = rng.uniform(1.5, 12)
    blotch = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), scale)
    blotch /= blotch.std() + 1e-6
    bg = bg + blotch[..., None] * rng.uniform(2, 18)
    fine = rng.normal(0, 1, (side, side, 1)).astype(np.float32) * rng.uniform(0, 6)
    return (bg + fine).astype(np.float32)


def _smooth_path(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    t = np.arange(n)
    f = rng.uniform(0.02, 0.12)
    return amplitude * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) + rng.normal(
        0, amplitude * 0.08, n
    )


def sample_expressions(rng: np.random.Generator, n: int) -> list[Expression]:
    """Blinks, speech-like mouth movement, brow raises, head yaw and gaze over `n` frames."""
    eye = np.ones(n)
    t = 0
    while t < n:
        t += int(rng.integers(3, 40))
        eye[t : t + 2] = rng.uniform(0.0, 0.25)
    mouth = np.clip(cv2.GaussianBlur(rng.uniform(-0.6, 1.0, (n, 1)), (1, 0), 1.2).ravel(), 0, 1)
    brow = np.clip(_smooth_path(rng, n, rng.uniform(0, 0.8)), 0, 1)
    yaw = np.clip(_smooth_path(rng, n, rng.uniform(0.1, 0.8)), -1, 1)
    gaze = np.clip(_smooth_path(rng, n, 0.7), -1, 1)
    return [Expression(eye[i], mouth[i], brow[i], yaw[i], gaze[i]) for i in range(n)]


def sample_scene(rng: np.random.Generator, domain: Domain, size: int, frames: int) -> Scene:
    face_px = rng.uniform(*domain.face_ratio) * size
    scale = face_px / (2 * 88.0)
    cx = size / 2 + rng.uniform(-0.08, 0.08) * size
    cy = size / 2 + rng.uniform(-0.06, 0.06) * size
    tx, ty = _smooth_path(rng, frames, 0.025 * size), _smooth_path(rng, frames, 0.02 * size)
    roll = rng.uniform(-5, 5) + _smooth_path(rng, frames, rng.uniform(1, 7))
    zoom = 1 + _smooth_path(rng, frames, 0.04)
    poses = [Pose(cx + tx[i], cy + ty[i], scale * zoom[i], roll[i]) for i in range(frames)]
    azimuth = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(*domain.light_strength)
    light = np.array([np.cos(azimuth) * strength, np.sin(azimuth) * strength - 0.2, 1.0])
    light /= np.linalg.norm(light)
    return Scene(
        size=size,
        frames=frames,
        background=_background(rng, size + 2 * MARGIN),
        light=light,
        ambient=rng.uniform(0.35, 0.6),
        gain=rng.uniform(0.8, 1.2),
        tint=1 + rng.normal(0, domain.tint, 3),
        focus=rng.uniform(*domain.focus),
        noise=rng.uniform(*domain.noise),
        vignette=rng.uniform(0, 0.35),
        poses=poses,
        expressions=sample_expressions(rng, frames),
        shake=np.stack([_smooth_path(rng, frames, 2.0), _smooth_path(rng, frames, 2.0)], 1),
        flicker=1 + rng.normal(0, 0.01, frames),
        noise_seed=int(rng.integers(2**31)),
    )


def face_geometry(idt: Identity, ex: Expression, pose: Pose) -> dict:
    """Frame-coordinate face box, 5 landmarks and contour: the sidecar a `precomputed` detector reads."""
    m = pose_matrix(pose)
    contour = transform(face_contour(idt), m)
    lm = transform(landmarks(idt, ex), m)
    x0, y0 = contour.min(0)
    x1, y1 = contour.max(0)
    return {
        "box": [round(float(v), 1) for v in (x0, y0, x1, y1)],
        "landmarks": np.round(lm, 1).tolist(),
        "contour": np.round(contour, 1).tolist(),
    }


def render_head(scene: Scene, idt: Identity, ex: Expression, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """The head in frame coordinates under the scene's light: BGR float and alpha."""
    canvas, alpha = render_canvas(idt, ex, scene.shading(idt), scene.ambient)
    m = pose_matrix(pose)
    return warp(canvas, m, scene.size), warp(alpha, m, scene.size)


def lens(scene: Scene, image: np.ndarray, t: int) -> np.ndarray:
    """Optics and exposure, shared by everything the camera sees (also pasted faces, so that a swap
    does not change the frame's brightness or colour balance by itself)."""
    if scene.focus > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), scene.focus)
    yy, xx = np.mgrid[0 : scene.size, 0 : scene.size].astype(np.float32) / scene.size - 0.5
    vignette = 1 - scene.vignette * (xx**2 + yy**2) * 2
    return image * (scene.gain * scene.flicker[t]) * scene.tint * vignette[..., None]


def sensor(scene: Scene, image: np.ndarray, t: int) -> np.ndarray:
    rng = np.random.default_rng([scene.noise_seed, t])
    noisy = image + rng.normal(0, scene.noise, image.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def film(scene: Scene, idt: Identity) -> tuple[list[np.ndarray], list[dict]]:
    """Render a real video: frames (BGR uint8) and per-frame face geometry."""
    frames, geometry = [], []
    s = scene.size
    for t, (ex, pose) in enumerate(zip(scene.expressions, scene.poses, strict=True)):
        ox, oy = np.round(scene.shake[t] + MARGIN).astype(int)
        ox, oy = np.clip([ox, oy], 0, 2 * MARGIN)
        bg = scene.background[oy : oy + s, ox : ox + s]
        head, alpha = render_head(scene, idt, ex, pose)
        image = bg * (1 - alpha[..., None]) + head * alpha[..., None]
        frames.append(sensor(scene, lens(scene, image, t), t))
        geometry.append(face_geometry(idt, ex, pose))
    return frames, geometry


__all__ = ["CANVAS", "Domain", "Scene", "face_geometry", "film", "lens", "render_head", "sample_scene"]
