import cv2
import numpy as np
import pytest
from skimage import data

from fbifpn.data.sbi import face_mask, self_blend

BOX = (150, 60, 330, 260)  # the astronaut's face in skimage.data.astronaut()


@pytest.fixture(scope="module")
def photo():
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _contour(box, n=24):
    x0, y0, x1, y1 = box
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)], 1)


@pytest.mark.parametrize("seed", range(8))
def test_self_blend_mask_and_image(photo, seed):
    out, mask = self_blend(photo, np.random.default_rng(seed), landmarks=_contour(BOX))
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert mask.shape == photo.shape[:2] and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1 and mask.max() > 0.2
    assert (out[mask == 0] == photo[mask == 0]).all()  # untouched outside the blend
    strong = mask > 0.5
    if strong.any():
        changed = (np.abs(out.astype(int) - photo.astype(int)).max(-1) > 0)[strong].mean()
        assert changed > 0.9


def test_blend_stays_around_the_face(photo):
    _, mask = self_blend(photo, np.random.default_rng(0), landmarks=_contour(BOX))
    x0, y0, x1, y1 = BOX
    outside = np.ones_like(mask, bool)
    outside[y0 - 40 : y1 + 40, x0 - 40 : x1 + 40] = False
    assert mask[outside].max() < 0.05


def test_box_fallback_is_the_inscribed_ellipse(photo):
    hull = face_mask(photo.shape[:2], box=BOX)
    cx, cy = (BOX[0] + BOX[2]) // 2, (BOX[1] + BOX[3]) // 2
    assert hull[cy, cx] == 1 and hull[BOX[1] + 2, BOX[0] + 2] == 0  # centre in, box corner out
    area = np.pi * (BOX[2] - BOX[0]) / 2 * (BOX[3] - BOX[1]) / 2
    assert abs(hull.sum() - area) / area < 0.02
    out, mask = self_blend(photo, np.random.default_rng(1), box=BOX)
    ys, xs = np.nonzero(mask > 0.5)
    assert abs(xs.mean() - cx) < 20 and abs(ys.mean() - cy) < 20


def test_self_blend_needs_a_face(photo):
    with pytest.raises(ValueError, match="landmarks"):
        self_blend(photo, np.random.default_rng(0))


def test_self_blend_is_seeded(photo):
    a = self_blend(photo, np.random.default_rng(5), box=BOX)
    b = self_blend(photo, np.random.default_rng(5), box=BOX)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
