"""The saliency of every filter computed three ways gives one answer: reverse mode (one
cotangent per filter), forward mode (one banded tangent per input point, every layer at once)
and the automatic choice between them, on every committed model and both shipped models, on
real windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import MANIFEST, model_path, real_windows

SHIPPED = Path(tsv.__file__).parent / "models"


def _cases() -> list[tuple[str, Path]]:
    cases = [(name, model_path(name)) for name in sorted(MANIFEST)]
    cases += [(p.stem, p) for p in sorted(SHIPPED.glob("*.onnx"))]
    return cases


def _windows(model: tsv.Model, n: int) -> np.ndarray:
    shape = [s if s > 0 else 96 for s in model.sample_shape]
    if model.layout == "NT":
        return real_windows((1, shape[0]), "NCT", n, seed=3)[:, 0, :]
    return real_windows(tuple(shape), model.layout, n, seed=3)


@pytest.mark.parametrize(("name", "path"), _cases(), ids=[c[0] for c in _cases()])
def test_forward_reverse_and_auto_saliency_agree(name: str, path: Path) -> None:
    model = tsv.load(path)
    x = _windows(model, 3)
    # Separate explanations, so that no mode reads what another one cached.
    modes = {m: model.explain(x) for m in ("reverse", "forward", "auto")}
    for layer in modes["reverse"].layer_names:
        ref = modes["reverse"].saliency(layer, method="reverse")
        scale = float(np.abs(ref).max())
        assert scale > 0, f"{name} {layer}: all-zero saliency checks nothing"
        for m in ("forward", "auto"):
            got = modes[m].saliency(layer, method=m)
            assert got.shape == ref.shape
            err = float(np.abs(got - ref).max())
            assert err <= 1e-5 * scale, f"{name} {layer} {m}: max diff {err:.3g} of {scale:.3g}"


def test_forward_mode_serves_a_subset_of_filters_from_its_cache() -> None:
    model = tsv.load(model_path("fcn_op17"))
    ex = model.explain(real_windows((1, 150), "NCT", 2))
    layer = ex.layer_names[1]
    every = ex.saliency(layer, method="forward")
    np.testing.assert_array_equal(ex.saliency(layer, [5, 3], method="forward"), every[:, [5, 3]])
    np.testing.assert_array_equal(ex.saliency(layer, 7, method="forward"), every[:, 7])
    np.testing.assert_allclose(ex.saliency(layer, [5, 3], method="reverse"), every[:, [5, 3]],
                               rtol=0, atol=1e-5 * float(np.abs(every).max()))


def test_saliency_method_is_checked() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    ex = model.explain(real_windows((2, 50), "NCT", 1))
    with pytest.raises(tsv.ArgumentError, match="method must be 'auto', 'reverse' or 'forward'"):
        ex.saliency(ex.layer_names[0], method="backward")
