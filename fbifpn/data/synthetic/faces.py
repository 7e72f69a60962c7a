"""Procedural faces: identities, their expressions over time, and their rendering into video frames.

A face is drawn with OpenCV primitives on a canonical canvas (face centred, upright), shaded by a
per-identity normal map under the video's light, then warped into the frame by the head pose. The
same canvas geometry gives the 5 landmarks (MTCNN order: eyes, nose, mouth corners), the face
contour, and the region masks that the manipulation methods blend through.

Everything random is drawn from a `numpy.random.Generator` passed in, so a seed fixes every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CANVAS = 256  # canonical canvas side, pixels
CENTER = np.array([128.0, 136.0])  # face centre on the canvas
FACE_HEIGHT = 2 * 88.0  # nominal canonical face height; pose scales it to the frame

# Skin tones (BGR) across the Fitzpatrick/Monk range, light to deep; identities interpolate between
# neighbours, and each domain weights the range differently.
SKIN_TONES = np.array(
    [
        (196, 222, 250),
        (170, 198, 236),
        (140, 175, 222),
        (110, 148, 200),
        (82, 118, 170),
        (60, 88, 134),
        (44, 62, 96),
        (34, 44, 66),
    ],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [
        (20, 20, 22),
        (30, 40, 60),
        (40, 70, 110),
        (70, 120, 170),
        (110, 170, 215),
        (40, 60, 150),
        (150, 150, 155),
    ],
    dtype=np.float32,
)
IRIS_COLOURS = np.array(
    [(30, 50, 80), (40, 70, 110), (140, 110, 60), (90, 120, 80), (120, 120, 110)], np.float32
)


@dataclass(frozen=True)
class Identity:
    """Everything about a person that stays fixed across their videos."""

    half_w: float
    half_h: float
    jaw: float  # 0 round chin .. 1 pointed chin
    skin: np.ndarray  # BGR
    blush: float
    texture: np.ndarray  # [CANVAS, CANVAS] static skin texture, zero mean
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    iris: np.ndarray
    brow_thick: int
    brow_arch: float
    brow_gap: float
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_h: float
    lip: np.ndarray
    hair: np.ndarray
    hair_style: int  # 0 short, 1 long, 2 buzz, 3 fringe
    hair_volume: float
    glasses: int  # 0 none, 1 round, 2 rectangular
    glasses_colour: np.ndarray
    ear_size: float


@dataclass(frozen=True)
class Expression:
    """One frame's face state."""

    eye_open: float = 1.0  # 0 closed (blink) .. 1 open
    mouth_open: float = 0.0  # 0 closed .. 1 wide
    brow_raise: float = 0.0
    yaw: float = 0.0  # -1 .. 1: features shift sideways as the head turns
    gaze: float = 0.0


@dataclass(frozen=True)
class Pose:
    cx: float
    cy: float
    scale: float  # frame pixels per canvas pixel
    roll: float  # degrees


def sample_identity(rng: np.random.Generator, skin_weights: np.ndarray | None = None) -> Identity:
    weights = np.ones(len(SKIN_TONES) - 1) if skin_weights is None else np.asarray(skin_weights, float)
    k = rng.choice(len(weights), p=weights / weights.sum())
    skin = SKIN_TONES[k] + rng.uniform() * (SKIN_TONES[k + 1] - SKIN_TONES[k]) + rng.normal(0, 4, 3)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (CANVAS, CANVAS)).astype(np.float32), (0, 0), 1.2)
    texture += 0.6 * cv2.GaussianBlur(rng.normal(0, 1, (CANVAS, CANVAS)).astype(np.float32), (0, 0), 6) * 3
    lip = skin * rng.uniform(0.62, 0.8) + np.array([10, 0, 35]) * rng.uniform(0.5, 1.2)
    return Identity(
        half_w=rng.uniform(60, 72),
        half_h=rng.uniform(80, 94),
        jaw=rng.uniform(0, 1),
        skin=np.clip(skin, 20, 250).astype(np.float32),
        blush=rng.uniform(0, 0.25),
        texture=texture * rng.uniform(1.5, 4.0),
        eye_dx=rng.uniform(23, 30),
        eye_y=rng.uniform(-22, -12),
        eye_w=rng.uniform(11, 15),
        eye_h=rng.uniform(4.5, 7.0),
        iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] + rng.normal(0, 8, 3),
        brow_thick=int(rng.integers(2, 6)),
        brow_arch=rng.uniform(0, 6),
        brow_gap=rng.uniform(9, 15),
        nose_len=rng.uniform(22, 34),
        nose_w=rng.uniform(7, 12),
        mouth_y=rng.uniform(34, 46),
        mouth_w=rng.uniform(16, 25),
        lip_h=rng.uniform(3, 6),
        lip=np.clip(lip, 10, 250).astype(np.float32),
        hair=np.clip(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] + rng.normal(0, 10, 3), 0, 255).astype(
            np.float32
        ),
        hair_style=int(rng.integers(4)),
        hair_volume=rng.uniform(6, 20),
        glasses=int(rng.choice(3, p=[0.82, 0.09, 0.09])),
        glasses_colour=rng.uniform(10, 120, 3).astype(np.float32),
        ear_size=rng.uniform(9, 14),
    )


def face_contour(idt: Identity, n: int = 36) -> np.ndarray:
    """Canonical face outline: an ellipse whose lower half narrows towards the chin by `jaw`."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = np.sin(t), -np.cos(t)  # starts at the top, clockwise
    lower = np.clip(y, 0, 1)
    x = x * (1 - 0.28 * idt.jaw * lower**1.5)
    return np.stack([CENTER[0] + idt.half_w * x, CENTER[1] + idt.half_h * y], 1)


def landmarks(idt: Identity, ex: Expression) -> np.ndarray:
    """5 canonical points: left eye, right eye, nose tip, left and right mouth corners."""
    dx = ex.yaw * 8
    cx, cy = CENTER
    mw = idt.mouth_w * (1 - 0.15 * ex.mouth_open)
    return np.array(
        [
            (cx - idt.eye_dx + dx, cy + idt.eye_y),
            (cx + idt.eye_dx + dx, cy + idt.eye_y),
            (cx + 1.5 * dx, cy + idt.eye_y + idt.nose_len),
            (cx - mw + dx, cy + idt.mouth_y),
            (cx + mw + dx, cy + idt.mouth_y),
        ]
    )


def _pts(points: np.ndarray) -> np.ndarray:
    return np.round(points * 16).astype(np.int32)  # cv2 drawing with 4 fractional bits


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * 16)), int(round(y * 16))


def _bgr(colour) -> tuple[float, ...]:
    return tuple(float(c) for c in colour)


def _ellipse(img, centre, axes, colour, angle=0.0, thickness=-1):
    cv2.ellipse(
        img,
        tuple(int(round(c * 16)) for c in centre),
        tuple(max(1, int(round(a * 16))) for a in axes),
        angle,
        0,
        360,
        _bgr(colour),
        thickness,
        cv2.LINE_AA,
        4,
    )


def _poly(img, points, colour):
    cv2.fillPoly(img, [_pts(points)], _bgr(colour), cv2.LINE_AA, 4)


def shading_map(idt: Identity, light: np.ndarray) -> np.ndarray:
    """Lambertian shading of an ellipsoid head under a unit light direction (x right, y down, z out)."""
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
    u = (xx - CENTER[0]) / (idt.half_w * 1.15)
    v = (yy - CENTER[1]) / (idt.half_h * 1.1)
    z = np.sqrt(np.clip(1 - u**2 - v**2, 0.02, 1))
    n = np.stack([u, v, z], -1) / np.sqrt(u**2 + v**2 + z**2)[..., None]
    return np.clip(n @ light.astype(np.float32), 0, 1)


def render_canvas(
    idt: Identity, ex: Expression, shade: np.ndarray, ambient: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the head on the canonical canvas: BGR float image and alpha (head, hair, neck)."""
    img = np.zeros((CANVAS, CANVAS, 3), np.float32)
    alpha = np.zeros((CANVAS, CANVAS), np.float32)
    cx, cy = CENTER
    contour = face_contour(idt)
    dx = ex.yaw * 8
    hair = idt.hair
    top = cy - idt.half_h

    # hair behind the head, neck, ears
    if idt.hair_style == 1:
        back = np.array(
            [
                (cx - idt.half_w - 14, top + 20),
                (cx + idt.half_w + 14, top + 20),
                (cx + idt.half_w + 20, cy + 110),
                (cx - idt.half_w - 20, cy + 110),
            ]
        )
        _poly(img, back, hair * 0.8)
        _poly(alpha, back, (1,))
    neck = np.array([(cx - 30, cy + 40), (cx + 30, cy + 40), (cx + 36, CANVAS), (cx - 36, CANVAS)])
    _poly(img, neck, idt.skin * 0.78)
    _poly(alpha, neck, (1,))
    for side in (-1, 1):
        ear = (cx + side * (idt.half_w - 2) - dx * 0.5, cy + idt.eye_y + 12)
        _ellipse(img, ear, (idt.ear_size * 0.55, idt.ear_size), idt.skin * 0.85)
        _ellipse(alpha, ear, (idt.ear_size * 0.55, idt.ear_size), (1,))

    # skin, shaded and textured
    face = np.zeros((CANVAS, CANVAS), np.float32)
    _poly(face, contour, (1,))
    lit = (ambient + (1 - ambient) * shade)[..., None] * idt.skin + idt.texture[..., None]
    img = img * (1 - face[..., None]) + lit * face[..., None]
    alpha = np.maximum(alpha, face)
    for side in (-1, 1):
        blush = np.zeros((CANVAS, CANVAS), np.float32)
        _ellipse(blush, (cx + side * idt.eye_dx * 1.2 + dx, cy + 14), (14, 9), (idt.blush,))
        blush = cv2.GaussianBlur(blush, (0, 0), 5)
        img += blush[..., None] * np.array([-20, -25, 25], np.float32)

    # hair on top, before the features so that it never covers the eyes; the hairline leaves the
    # (shaded, textured) forehead bare
    hair_mask = np.zeros((CANVAS, CANVAS), np.float32)
    if idt.hair_style != 2:
        cap_h = idt.half_h * (0.55 if idt.hair_style != 3 else 0.7)
        cap = ((cx, top + cap_h * 0.55), (idt.half_w + 4, cap_h * 0.6 + idt.hair_volume * 0.5))
        _ellipse(hair_mask, *cap, (1,))
        _ellipse(alpha, *cap, (1,))
        forehead = np.zeros_like(hair_mask)
        _ellipse(forehead, (cx + dx * 0.3, top + cap_h * 1.1), (idt.half_w * 0.72, cap_h * 0.42), (1,))
        hair_mask = np.clip(hair_mask - forehead * face, 0, 1)
        if idt.hair_style == 3:  # fringe
            _ellipse(
                hair_mask, (cx - 10, top + cap_h * 0.75), (idt.half_w * 0.7, cap_h * 0.35), (1,), angle=-8
            )
        strands = hair + 2.5 * idt.texture[..., None]
    else:  # buzz cut: a thin, partly transparent cap
        _ellipse(hair_mask, (cx, top + 14), (idt.half_w * 0.9, 18), (0.55,))
        strands = hair + idt.texture[..., None]
    img = img * (1 - hair_mask[..., None]) + strands * hair_mask[..., None]

    # eyes: white, iris, pupil, then the lid closes over them for a blink
    for side in (-1, 1):
        ec = (cx + side * idt.eye_dx + dx, cy + idt.eye_y)
        open_h = idt.eye_h * max(ex.eye_open, 0.08)
        _ellipse(img, ec, (idt.eye_w, open_h), (225, 230, 232))
        iris_c = (ec[0] + ex.gaze * 3, ec[1])
        ir = min(idt.eye_h * 0.95, idt.eye_w * 0.5)
        _ellipse(img, iris_c, (ir, min(ir, open_h)), idt.iris)
        _ellipse(img, iris_c, (ir * 0.45, min(ir * 0.45, open_h)), (15, 15, 18))
        _ellipse(img, ec, (idt.eye_w + 1, open_h + 0.5), idt.skin * 0.45, thickness=1)
        # brows rise with the expression
        by = ec[1] - idt.brow_gap - 4 * ex.brow_raise
        brow = np.array(
            [
                (ec[0] - side * idt.eye_w * 1.1, by + 2),
                (ec[0], by - idt.brow_arch),
                (ec[0] + side * idt.eye_w * 1.2, by + 1),
            ]
        )
        cv2.polylines(img, [_pts(brow)], False, _bgr(hair * 0.9 + 10), idt.brow_thick, cv2.LINE_AA, 4)

    # nose: a shaded ridge and nostrils
    nose_top = cy + idt.eye_y + 4
    tip = (cx + 1.5 * dx, nose_top + idt.nose_len)
    cv2.line(img, _pt(cx + dx, nose_top), _pt(*tip), _bgr(idt.skin * 0.82), 2, cv2.LINE_AA, 4)
    for side in (-1, 1):
        _ellipse(img, (tip[0] + side * idt.nose_w * 0.5, tip[1]), (idt.nose_w * 0.28, 2.2), idt.skin * 0.45)
    _ellipse(img, (tip[0], tip[1] - 3), (idt.nose_w * 0.35, 3), np.minimum(idt.skin * 1.12, 255))

    # mouth: lips, and a dark opening with a hint of teeth when it opens
    mc = (cx + dx, cy + idt.mouth_y)
    mw = idt.mouth_w * (1 - 0.15 * ex.mouth_open)
    open_h = 1 + 9 * ex.mouth_open
    _ellipse(img, mc, (mw, idt.lip_h + open_h * 0.6), idt.lip)
    _ellipse(img, mc, (mw * 0.85, open_h * 0.55), (25, 20, 45))
    if ex.mouth_open > 0.3:
        _ellipse(img, (mc[0], mc[1] - open_h * 0.3), (mw * 0.6, open_h * 0.18), (215, 220, 225))
    cv2.line(img, _pt(mc[0] - mw, mc[1]), _pt(mc[0] + mw, mc[1]), _bgr(idt.lip * 0.55), 1, cv2.LINE_AA, 4)

    if idt.glasses:
        for side in (-1, 1):
            ec = (cx + side * idt.eye_dx + dx, cy + idt.eye_y)
            if idt.glasses == 1:
                _ellipse(img, ec, (idt.eye_w + 5, idt.eye_w + 2), idt.glasses_colour, thickness=2)
            else:
                box = np.array(
                    [
                        (ec[0] - idt.eye_w - 6, ec[1] - 10),
                        (ec[0] + idt.eye_w + 6, ec[1] - 10),
                        (ec[0] + idt.eye_w + 6, ec[1] + 9),
                        (ec[0] - idt.eye_w - 6, ec[1] + 9),
                    ]
                )
                cv2.polylines(img, [_pts(box)], True, _bgr(idt.glasses_colour), 2, cv2.LINE_AA, 4)
        bridge = (
            _pt(cx - idt.eye_dx + idt.eye_w + dx, cy + idt.eye_y),
            _pt(cx + idt.eye_dx - idt.eye_w + dx, cy + idt.eye_y),
        )
        cv2.line(img, *bridge, _bgr(idt.glasses_colour), 2, cv2.LINE_AA, 4)
    return img, alpha


def region_masks(idt: Identity, ex: Expression) -> dict[str, np.ndarray]:
    """Hard canonical masks the manipulations blend through (feathering is each method's choice)."""
    cx, cy = CENTER
    dx = ex.yaw * 8
    contour = face_contour(idt)
    masks = {}
    hull = np.zeros((CANVAS, CANVAS), np.float32)
    _poly(hull, contour, (1,))
    # a face swap takes the face below the hairline: brows, eyes, nose, mouth, cheeks and chin
    face = hull.copy()
    face[: int(cy + idt.eye_y - idt.brow_gap - 14)] = 0
    masks["face"] = face
    inner = np.zeros_like(hull)
    brow_y = cy + idt.eye_y - idt.brow_gap - 6
    pts = (contour - CENTER) * np.array([0.84, 0.9]) + CENTER
    pts = pts[pts[:, 1] >= brow_y]
    _poly(inner, np.vstack([pts, [(cx - idt.half_w * 0.8, brow_y), (cx + idt.half_w * 0.8, brow_y)]]), (1,))
    masks["inner"] = inner
    expr = np.zeros_like(hull)
    for side in (-1, 1):
        _ellipse(
            expr, (cx + side * idt.eye_dx + dx, cy + idt.eye_y - 5), (idt.eye_w * 1.6, idt.eye_h + 11), (1,)
        )
    _ellipse(expr, (cx + dx, cy + idt.mouth_y + 2), (idt.mouth_w * 1.45, idt.lip_h + 15), (1,))
    masks["expression"] = expr
    mouth = np.zeros_like(hull)
    _ellipse(mouth, (cx + dx, cy + idt.mouth_y + 5), (idt.mouth_w * 1.55, idt.lip_h + 19), (1,))
    masks["mouth"] = mouth * hull
    return masks


def pose_matrix(pose: Pose) -> np.ndarray:
    """2x3 affine taking canvas coordinates to frame coordinates."""
    m = cv2.getRotationMatrix2D((float(CENTER[0]), float(CENTER[1])), pose.roll, pose.scale)
    m[:, 2] += np.array([pose.cx, pose.cy]) - CENTER
    return m


def warp(canvas: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(canvas, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def transform(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]
