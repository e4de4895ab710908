"""The report's pictures: filters told apart by their index, axes named, each activation on its
own time axis beside the input's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv
from tsviz_native import models


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("matplotlib")
    from tsviz_native import report

    captured = {}
    real_save = report._save

    def keep(fig, path: Path, plt):  # the figures as drawn, before they are closed
        captured[path.name] = [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel(),
                                [t.get_text() for t in ax.get_xticklabels()]) for ax in fig.axes]
        return real_save(fig, path, plt)

    model = tsv.load(models.path("forecaster"))
    X, y, _ = models.forecaster_windows("test")
    mp = pytest.MonkeyPatch()
    mp.setattr(report, "_save", keep)
    try:
        rep = report.build_report(model, X[:20], 0, tmp_path_factory.mktemp("r"), truth=float(y[0]))
    finally:
        mp.undo()
    return {"axes": captured, "report": rep, "ex": model.explain(X[0])}


def test_importance_bars_are_labelled_by_filter_index_in_rank_order(figures: dict) -> None:
    axes = figures["axes"]["importance.png"]
    ex = figures["ex"]
    assert len(axes) == 3  # the convolutions
    for (title, xlabel, ylabel, ticks), layer in zip(axes, ex.layers):
        imp = ex.importance[layer.name][0]
        assert ticks == [str(f) for f in np.argsort(-imp, kind="stable")]
        assert title.startswith(layer.label) and layer.name in title
        assert xlabel == f"filter index of {layer.label}, most important first" and ylabel == "importance"


def test_top_filters_name_their_axes_and_time_axes(figures: dict) -> None:
    axes = figures["axes"]["top_filters.png"]
    activation, saliency = axes[0::2], axes[1::2]
    assert len(activation) == len(saliency) == 6
    for title, xlabel, ylabel, _ in activation:
        assert "activation a[" in title and ylabel == "activation"
        assert xlabel.startswith("position in the layer's output (its own time axis, ")
    lengths = {int(x.split(", ")[1].split()[0]) for _, x, _, _ in activation}
    assert lengths == {50, 25, 12}  # each layer's own length, not the input's
    for title, xlabel, ylabel, _ in saliency:
        assert xlabel == "input time step (50 steps)" and ylabel == "saliency"
