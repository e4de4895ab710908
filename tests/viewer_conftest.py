"""Fixtures of the viewer tests: an offscreen vispy backend (OSMesa, else EGL), chosen before
anything imports ``vispy.scene``, and one module-scoped viewer on the shipped forecaster."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

SIZE = (1800, 1000)
SAMPLE = 100


def unavailable(reason: str) -> None:
    """Skips where the machine lacks GL or X tools; under CI (.ci/run installs them all) a
    missing piece is a failure, so the viewer tests cannot pass by not running."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def need(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        unavailable(f"{module} is not installed (pip install '.[viewer]')")


def _backend() -> str:
    need("vispy")
    from tsviz_native.viewer import backend

    try:
        return backend.use(headless=True)
    except backend.BackendError as e:
        unavailable(f"no offscreen OpenGL here: {e}")


@pytest.fixture(scope="module")
def forecaster():
    import tsviz_native as tsv
    from tsviz_native import models

    model = tsv.load(models.path("forecaster"))
    X, y, _ = models.forecaster_windows("test")
    return model, X[: SAMPLE + 20], y[: SAMPLE + 20]


@pytest.fixture(scope="module")
def gl_viewer(forecaster):
    """One offscreen viewer for the whole module (a canvas and its shaders are costly)."""
    _backend()
    from tsviz_native.viewer.app import Viewer

    model, X, y = forecaster
    v = Viewer(model, X, y, sample=SAMPLE, size=SIZE, show=False, threaded=False)
    yield v
    v.close()


def project(viewer, pts3: np.ndarray) -> np.ndarray:
    """Scene points ``(x, y, depth)`` of the current geometry to canvas pixels ``(x, y)``."""
    g = viewer.geometry
    perm = [0, 2, 1] if g.three_d else [0, 1, 2]
    mapped = viewer.line.get_transform("visual", "canvas").map(np.asarray(pts3)[:, perm])
    return mapped[:, :2] / mapped[:, 3:4]


def red_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of an importance bar: red, with little green and blue."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 40) & (r > 3 * g) & (r > 3 * b)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    return ndimage.label(mask)
