"""Faithfulness of the importances (docs/definitions.md, "Faithfulness"): reversed importances
give the mirrored table, the engine's zeroing is what the table measures, and the deletion /
insertion curves start and end where they must."""

from __future__ import annotations

import numpy as np
import pytest

import tsviz_native as tsv
from tsviz_native import models


@pytest.fixture(scope="module")
def forecaster():
    X, y, _ = models.forecaster_windows("test")
    return tsv.load(models.path("forecaster")), X[:48], y[:48]


def reversed_importance(ex):
    return {name: -np.asarray(ex.importance[name]) for name in ex.layer_names}


def test_reversed_importances_give_the_mirrored_table(forecaster) -> None:
    model, X, y = forecaster
    r = tsv.faithfulness(model, X, y, ks=(0.1, 0.25, 0.5), repeats=2, fractions=(0.0, 0.5, 1.0),
                         criteria={"importance": "importance", "reversed": reversed_importance})
    rows = {(row["scope"], row["criterion"], row["order"], row["k"]): row for row in r.rows}
    mirrored = 0
    for (scope, crit, order, k), row in rows.items():
        if crit != "importance":
            continue
        other = rows[(scope, "reversed", "bottom" if order == "top" else "top", k)]
        for key in ("output_change", "MAPE %", "RMSE"):
            assert other[key] == row[key], (scope, order, k, key)
        mirrored += 1
    assert mirrored == 2 * 3 * 4  # two orders, three k, three convolutions and the network
    # The table is not trivially symmetric: the top filters matter more than the bottom ones.
    top = [row["output_change"] for key, row in rows.items() if key[1] == "importance" and key[2] == "top"]
    bottom = [row["output_change"] for key, row in rows.items() if key[1] == "importance" and key[2] == "bottom"]
    assert np.mean(top) > 10 * np.mean(bottom)


def test_the_table_measures_the_engine_zeroing(forecaster) -> None:
    model, X, y = forecaster
    r = tsv.faithfulness(model, X, y, ks=(2,), repeats=1, criteria=("importance",), fractions=(0.0, 1.0))
    row = next(row for row in r.rows if row["scope"].startswith("conv 2") and row["order"] == "top")
    imp = model.explain(X).importance[model.layer("conv 2").name]
    mask = np.zeros_like(imp, dtype=bool)
    np.put_along_axis(mask, np.argsort(-imp, axis=1, kind="stable")[:, :2], True, axis=1)
    out = model.predict_zeroed(X, {"conv 2": mask})
    assert row["k"] == 2 and row["share"] == pytest.approx(2 / 32)
    assert row["output_change"] == pytest.approx(float(np.mean(np.abs(out.astype(np.float64) - model.predict(X)))))
    # Deletion of no point changes nothing; insertion of every point is the original input.
    for name in ("saliency", "taylor", "random"):
        assert r.curves["deletion"][name][0] == 0.0
        assert r.curves["insertion"][name][-1] == 0.0
    assert "mean" in r.baseline
    assert r.curves["deletion"]["saliency"][-1] == r.curves["deletion"]["random"][-1]  # all replaced


def test_faithfulness_pictures_and_arguments(forecaster, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    model, X, y = forecaster
    r = tsv.faithfulness(model, X[:8], ks=(0.25,), repeats=1, fractions=(0.0, 0.5, 1.0), baseline="zero")
    assert r.metric_against == "the original model's outputs" and r.baseline == "zero"
    files = r.plot(tmp_path)
    assert all((tmp_path / f).stat().st_size > 1000 for f in files)
    with pytest.raises(tsv.ArgumentError, match="ks holds shares"):
        tsv.faithfulness(model, X, ks=(0,))
    with pytest.raises(tsv.ArgumentError, match="criterion 'x'"):
        tsv.faithfulness(model, X, criteria={"x": "gradient"})
    with pytest.raises(tsv.ArgumentError, match="baseline must be"):
        tsv.faithfulness(model, X, baseline="median")
