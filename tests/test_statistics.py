"""Data-set statistics: streamed in batches, per class, and by Dask on worker processes, all
equal to the same quantities computed directly from one explanation of the whole set."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import model_path, real_windows
from tsviz_native.analysis.statistics import NEGLIGIBLE, analyze_dataset


@pytest.fixture(scope="module")
def forecaster() -> tsv.Model:
    return tsv.load(model_path("paper_net_op17"))


@pytest.fixture(scope="module")
def classifier() -> tsv.Model:
    return tsv.load(model_path("fcn_op17"))


def direct(model: tsv.Model, X: np.ndarray, rows: np.ndarray | None = None) -> dict:
    """The statistics from one explanation of every window, with plain numpy."""
    ex = model.explain(X)
    pick = slice(None) if rows is None else rows
    out = {}
    for name in ex.layer_names:
        imp = ex.importance[name][pick].astype(np.float64)
        raw = ex.importance_raw[name][pick].astype(np.float64)
        negligible = raw <= NEGLIGIBLE * raw.max(axis=1, keepdims=True)
        dead = np.all(ex.activations[name][pick] == 0, axis=2)  # the dead-filter rule
        out[name] = (imp.mean(0), imp.std(0), raw.mean(0), dead.mean(0), negligible.mean(0))
    mass = ex.output_saliency[pick].astype(np.float64).sum(axis=(0, 2))
    out["channels"] = mass / mass.sum()
    return out


def assert_matches(stats, expected: dict) -> None:
    for name, (mean, std, raw, dead, negligible) in ((k, v) for k, v in expected.items() if k != "channels"):
        s = stats.layers[name]
        np.testing.assert_allclose(s.mean, mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(s.std, std, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(s.raw_mean, raw, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(s.dead_share, dead)
        np.testing.assert_array_equal(s.negligible_share, negligible)
        assert np.all(s.negligible_share >= s.dead_share)  # a dead filter has importance 0
    np.testing.assert_allclose(stats.channel_saliency_share, expected["channels"], rtol=1e-9)


def test_streamed_batches_equal_one_explanation(forecaster: tsv.Model) -> None:
    X = real_windows((2, 50), "NCT", 300, seed=1)
    stats = analyze_dataset(forecaster, X, batch_size=64, progress=False)
    assert stats.n_windows == 300
    assert_matches(stats, direct(forecaster, X))
    assert list(stats.layers) == [l.name for l in forecaster.layers]
    assert stats.per_class == {}
    text = stats.summary()
    assert "300 windows" in text and "channel 0:" in text and "channel 1:" in text


def test_per_class_statistics_by_label_and_by_prediction(classifier: tsv.Model) -> None:
    gun = tsv.datasets.ucr("GunPoint")
    X = gun.X_test[:60].astype(np.float32)
    labels = gun.y_test[:60]
    stats = analyze_dataset(classifier, X, batch_size=25, labels=labels, progress=False)
    assert sorted(stats.per_class) == [0, 1]
    for k in (0, 1):
        rows = np.flatnonzero(labels == k)
        assert stats.per_class[k].n_windows == len(rows)
        assert_matches(stats.per_class[k], direct(classifier, X, rows))
    predicted = classifier.predict(X).argmax(axis=1)
    by_prediction = analyze_dataset(classifier, X, batch_size=25, progress=False)
    assert by_prediction.per_class[1].n_windows == int((predicted == 1).sum())


def test_memory_does_not_grow_with_the_number_of_windows(forecaster: tsv.Model) -> None:
    class Windows:
        """Real B5M windows made on demand, never all in memory."""

        def __init__(self, n: int) -> None:
            self.n = n
            s = tsv.datasets.internet_traffic("B5M").values
            self.s = ((s - s.mean()) / s.std()).astype(np.float32)

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, sl: slice) -> np.ndarray:
            idx = np.arange(sl.start, sl.stop) % (len(self.s) - 51)
            w = self.s[idx[:, None] + np.arange(50)]
            return np.stack([w, np.diff(w, axis=1, prepend=w[:, :1])], axis=1)

    peaks = []
    for n in (4_000, 16_000):
        tracemalloc.start()
        analyze_dataset(forecaster, Windows(n), batch_size=1000, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0]


def test_dask_on_two_worker_processes_equals_in_process(forecaster: tsv.Model) -> None:
    import dask.array as da  # the 'dask' extra; part of the test extra
    import distributed
    X = real_windows((2, 50), "NCT", 400, seed=2)
    local = analyze_dataset(forecaster, X, batch_size=128, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            remote = analyze_dataset(forecaster, da.from_array(X, chunks=(100, 2, 50)))
    assert remote.n_windows == local.n_windows
    for name in local.layers:
        np.testing.assert_allclose(remote.layers[name].mean, local.layers[name].mean, rtol=1e-12)
        np.testing.assert_allclose(remote.layers[name].std, local.layers[name].std, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(remote.layers[name].dead_share, local.layers[name].dead_share)
    np.testing.assert_allclose(remote.channel_saliency_share, local.channel_saliency_share, rtol=1e-12)


def test_model_pickles_as_its_onnx_bytes(forecaster: tsv.Model) -> None:
    X = real_windows((2, 50), "NCT", 3)
    clone = pickle.loads(pickle.dumps(forecaster))
    np.testing.assert_array_equal(clone.predict(X), forecaster.predict(X))


def test_argument_errors(forecaster: tsv.Model) -> None:
    X = real_windows((2, 50), "NCT", 3)
    with pytest.raises(tsv.ArgumentError, match="batch_size must be >= 1"):
        analyze_dataset(forecaster, X, batch_size=0)
    with pytest.raises(tsv.ArgumentError, match="no windows"):
        analyze_dataset(forecaster, X[:0])
    with pytest.raises(tsv.ArgumentError, match=r"labels has shape \(2,\); expected \(3,\)"):
        analyze_dataset(forecaster, X, labels=[0, 1])


def test_threads_give_the_same_numbers(forecaster: tsv.Model) -> None:
    X = real_windows((2, 50), "NCT", 500, seed=4)
    one = analyze_dataset(forecaster, X, batch_size=64, progress=False, workers=1)
    three = analyze_dataset(forecaster, X, batch_size=64, progress=False, workers=3)
    for name in one.layers:
        np.testing.assert_array_equal(one.layers[name].mean, three.layers[name].mean)
        np.testing.assert_array_equal(one.layers[name].dead_share, three.layers[name].dead_share)
    np.testing.assert_array_equal(one.channel_saliency_share, three.channel_saliency_share)
    with pytest.raises(tsv.ArgumentError, match="workers must be >= 1"):
        analyze_dataset(forecaster, X, workers=0)
