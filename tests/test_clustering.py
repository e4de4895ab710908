"""Filter clustering (docs/definitions.md, "Filter clustering") on real activations of the shipped models:
the FCN (128/256/128 filters) on GunPoint and the paper's forecaster (16/32/32 filters) on B5M
windows. Oracles: the naive NumPy references in naive.py, scikit-learn's KMeans and silhouette,
and scipy's average linkage."""

from __future__ import annotations

import subprocess
import sys

import naive
import numpy as np
import pytest
from conftest import model_path

import tsviz_native as tsv
from tsviz_native.analysis import clustering as cl

ArgumentError = tsv.ArgumentError
METHODS = ("kmeans", "hierarchical-dtw")


@pytest.fixture(scope="module")
def fcn() -> tsv.Explanation:
    x = tsv.datasets.ucr("GunPoint").X_test[:4].astype(np.float32)
    return tsv.load(model_path("fcn_op17")).explain(x.reshape(len(x), 1, 150))


@pytest.fixture(scope="module")
def paper() -> tsv.Explanation:
    # make_models.py's convention: ch0 = a 50-step window of B5M standardised by the series'
    # mean and std, ch1 = its first difference (prepending the first value).
    v = tsv.datasets.internet_traffic("B5M").values
    z = (v - v.mean()) / v.std()
    windows = [z[s : s + 50] for s in (500, 4000, 9000, 15000)]
    x = np.stack([np.stack([w, np.diff(w, prepend=w[0])]) for w in windows]).astype(np.float32)
    return tsv.load(model_path("paper_net_op17")).explain(x)


def conv_layers(ex: tsv.Explanation) -> list[str]:
    return [n for n in ex.layer_names if ex.activations[n].shape[2] > 1]


def real_cases(ex: tsv.Explanation) -> list[tuple[int, str]]:
    return [(s, n) for s in range(ex.n_samples) for n in conv_layers(ex)]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_the_shipped_models_have_the_layers_we_test(fcn: tsv.Explanation, paper: tsv.Explanation) -> None:
    assert [fcn.activations[n].shape[1:] for n in conv_layers(fcn)] == [(128, 150), (256, 150), (128, 150)]
    assert [paper.activations[n].shape[1] for n in conv_layers(paper)] == [16, 32, 32]


def test_scaling_matches_naive_and_constant_rows_become_zeros(fcn: tsv.Explanation) -> None:
    for s, name in real_cases(fcn):
        a = fcn.activations[name][s]
        got = cl.scale_rows(a)
        np.testing.assert_array_equal(got, naive.minmax_rows(a))
        constant = a.min(axis=1) == a.max(axis=1)
        assert constant.any(), "expected dead ReLU filters in the FCN"
        assert (got[constant] == 0).all()
        assert got.min() == 0 and got.max() == 1
    a = np.array([[3.0, 3.0, 3.0], [1.0, 2.0, 5.0], [-2.0, -2.0, -2.0]])
    np.testing.assert_array_equal(cl.scale_rows(a), [[0, 0, 0], [0, 0.25, 1], [0, 0, 0]])


@pytest.mark.parametrize("model", ["fcn", "paper"])
def test_kmeans_inertia_within_one_percent_of_scikit_learn(model: str, request: pytest.FixtureRequest) -> None:
    from sklearn.cluster import KMeans

    ex = request.getfixturevalue(model)
    for s, name in real_cases(ex):
        a, imp = ex.activations[name][s], ex.importance[name][s]
        res = cl.cluster_filters(a, imp)
        x = naive.minmax_rows(a)
        km = KMeans(n_clusters=res.k, init="k-means++", n_init=10, random_state=0).fit(x)
        # scikit-learn's inertia is to its final centers; the means of its clusters are no worse.
        theirs = min(km.inertia_, naive.inertia(x, km.labels_))
        assert res.inertia <= 1.01 * theirs, (model, s, name, res.inertia, theirs)
        np.testing.assert_allclose(res.inertia, naive.inertia(x, res.labels), rtol=1e-10)
        assert sorted(set(res.labels.tolist())) == list(range(res.k))


@pytest.mark.parametrize("method", METHODS)
def test_identical_seeds_give_identical_results(fcn: tsv.Explanation, method: str) -> None:
    # The 256-filter layer for k-means; DTW on 128 filters is enough for the deterministic
    # hierarchical method (its seed is unused) and four times cheaper.
    name = conv_layers(fcn)[1 if method == "kmeans" else 0]
    a, imp = fcn.activations[name][2], fcn.importance[name][2]
    for seed in (0, 7):
        r1 = cl.cluster_filters(a, imp, seed=seed, method=method)
        r2 = cl.cluster_filters(a.copy(), imp.copy(), seed=seed, method=method)
        np.testing.assert_array_equal(r1.labels, r2.labels)
        assert r1.inertia == r2.inertia and r1.k == r2.k
        assert r1.silhouette == r2.silhouette or (np.isnan(r1.silhouette) and np.isnan(r2.silhouette))
    b1 = fcn.clusters(name, seed=3, method=method, sample=1)
    b2 = fcn.clusters(name, seed=3, method=method, sample=1)
    np.testing.assert_array_equal(b1.labels, b2.labels)
    np.testing.assert_array_equal(b1.inertia, b2.inertia)


@pytest.mark.parametrize("method", METHODS)
def test_clusters_are_numbered_by_descending_mean_importance(
    fcn: tsv.Explanation, paper: tsv.Explanation, method: str
) -> None:
    for ex in (fcn, paper):
        for name in conv_layers(ex):
            # All samples with k-means; DTW matrices of the FCN's layers are costly, one will do.
            res = ex.clusters(name, method=method, sample=None if ex is paper or method == "kmeans" else 0)
            for s in range(res.labels.shape[0]):
                imp = ex.importance[name][s].astype(np.float64)
                lab = res.labels[s]
                means = np.array([imp[lab == c].mean() for c in range(res.k[s])])
                assert (np.diff(means) <= 0).all(), (name, s, means)
                assert means[0] == max(imp[lab == c].mean() for c in np.unique(lab))
    # Equal mean importance: the cluster holding the lowest filter index comes first.
    t = np.linspace(0.0, 1.0, 20)
    acts = np.stack([t, t + 1, -t, 1 - t, t**2, 2 * t**2])
    res = cl.cluster_filters(acts, np.full(6, 0.5), k=3, method=method)
    assert res.labels.tolist() == [0, 0, 1, 1, 2, 2]
    res = cl.cluster_filters(acts, np.array([0.1, 0.1, 0.2, 0.2, 0.9, 0.9]), k=3, method=method)
    assert res.labels.tolist() == [2, 2, 1, 1, 0, 0]


def test_default_k_rule(fcn: tsv.Explanation, paper: tsv.Explanation) -> None:
    # docs/definitions.md: max(1, round(n_filters / 5)); F / 5 never ends in .5 for an integer F.
    for f, k in [(1, 1), (2, 1), (3, 1), (7, 1), (8, 2), (12, 2), (13, 3), (16, 3), (32, 6), (128, 26), (256, 51)]:
        assert cl.default_k(f) == k == max(1, round(f / 5))
    for ex in (fcn, paper):
        for name in conv_layers(ex):
            res = ex.clusters(name, sample=0)
            assert res.k.tolist() == [cl.default_k(ex.activations[name].shape[1])]


@pytest.mark.parametrize("method", METHODS)
def test_k_equal_one_and_k_equal_n_filters(paper: tsv.Explanation, method: str) -> None:
    name = conv_layers(paper)[1]
    a, imp = paper.activations[name][0], paper.importance[name][0]
    x = naive.minmax_rows(a)
    one = cl.cluster_filters(a, imp, k=1, method=method)
    assert (one.labels == 0).all() and one.k == 1 and np.isnan(one.silhouette)
    np.testing.assert_allclose(one.inertia, ((x - x.mean(axis=0)) ** 2).sum(), rtol=1e-12)
    f = a.shape[0]
    every = cl.cluster_filters(a, imp, k=f, method=method)
    assert sorted(every.labels.tolist()) == list(range(f))
    assert every.inertia == 0.0 and every.silhouette == 0.0
    # Every filter alone: the numbering is the importance ranking.
    order = np.lexsort((np.arange(f), -imp.astype(np.float64)))
    assert every.labels[order].tolist() == list(range(f))


def test_duplicate_rows_still_give_k_non_empty_clusters() -> None:
    acts = np.zeros((6, 10))
    acts[5] = np.arange(10)
    for method in METHODS:
        res = cl.cluster_filters(acts, np.arange(6.0), k=4, method=method)
        assert sorted(set(res.labels.tolist())) == [0, 1, 2, 3]
        assert res.inertia == 0.0


def test_dtw_matrix_matches_naive(fcn: tsv.Explanation, paper: tsv.Explanation) -> None:
    x = naive.minmax_rows(fcn.activations[conv_layers(fcn)[0]][0])
    np.testing.assert_allclose(cl.dtw_matrix(x), naive.dtw_matrix(x), rtol=1e-9, atol=0)
    for name in conv_layers(paper):
        x = naive.minmax_rows(paper.activations[name][1])
        got = cl.dtw_matrix(x)
        np.testing.assert_allclose(got, naive.dtw_matrix(x), rtol=1e-9, atol=0)
        assert naive.dtw(x[0], x[1]) == pytest.approx(got[0, 1], rel=1e-12)
        assert naive.dtw(x[1], x[0]) == pytest.approx(got[1, 0], rel=1e-12)
    # Different lengths of warping: a shifted step costs only where it cannot warp.
    a = np.array([[0.0, 0, 1, 1, 1], [0.0, 0, 0, 1, 1], [1.0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(cl.dtw_matrix(a), naive.dtw_matrix(a))
    assert cl.dtw_matrix(a)[0, 1] == 0.0


def test_hierarchical_labels_equal_scipys_average_linkage(fcn: tsv.Explanation, paper: tsv.Explanation) -> None:
    import scipy.cluster.hierarchy as hierarchy  # scikit-learn (a test dependency) requires scipy
    from scipy.spatial.distance import squareform

    for ex, samples in ((fcn, [0]), (paper, range(paper.n_samples))):
        for name in conv_layers(ex):
            for s in samples:
                a, imp = ex.activations[name][s], ex.importance[name][s]
                res = cl.cluster_filters(a, imp, method="hierarchical-dtw")
                x = naive.minmax_rows(a)
                z = hierarchy.linkage(squareform(cl.dtw_matrix(x), checks=False), "average")
                theirs = hierarchy.cut_tree(z, n_clusters=res.k)[:, 0]
                assert same_partition(res.labels, theirs), (name, s)
                np.testing.assert_allclose(res.inertia, naive.inertia(x, res.labels), rtol=1e-10)


def test_silhouette_matches_scikit_learn(fcn: tsv.Explanation, paper: tsv.Explanation) -> None:
    from sklearn.metrics import silhouette_score

    for ex in (fcn, paper):
        for name in conv_layers(ex):
            a, imp = ex.activations[name][1], ex.importance[name][1]
            x = naive.minmax_rows(a)
            km = cl.cluster_filters(a, imp)
            assert km.silhouette == pytest.approx(silhouette_score(x, km.labels), rel=1e-9, abs=1e-9)
            assert km.silhouette == pytest.approx(naive.silhouette(naive.euclidean_matrix(x), km.labels), rel=1e-9, abs=1e-12)
            hd = cl.cluster_filters(a, imp, method="hierarchical-dtw")
            d = cl.dtw_matrix(x)
            assert hd.silhouette == pytest.approx(silhouette_score(d, hd.labels, metric="precomputed"), rel=1e-12)
            assert hd.silhouette == pytest.approx(naive.silhouette(d, hd.labels), rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_auto_k_picks_the_best_silhouette(fcn: tsv.Explanation, paper: tsv.Explanation, method: str) -> None:
    cases = [(paper, n, 2) for n in conv_layers(paper)]
    if method == "kmeans":  # hierarchical-dtw would recompute a 128-filter DTW matrix per k
        cases.append((fcn, conv_layers(fcn)[2], 0))
    for ex, name, s in cases:
        a, imp = ex.activations[name][s], ex.importance[name][s]
        f = a.shape[0]
        ks = list(cl.auto_k_range(f))
        assert ks == list(range(2, min(f - 1, max(2, f // 2), 20) + 1))
        each = [cl.cluster_filters(a, imp, k=k, method=method) for k in ks]
        best = each[int(np.argmax([r.silhouette for r in each]))]
        auto = cl.cluster_filters(a, imp, k="auto", method=method)
        assert auto.k == best.k and auto.silhouette == best.silhouette
        np.testing.assert_array_equal(auto.labels, best.labels)
        assert auto.silhouette == max(r.silhouette for r in each)
    t = np.linspace(0.0, 1.0, 9)
    for f in (1, 2):
        r = cl.cluster_filters(np.stack([t, -t][:f]), np.ones(f), k="auto", method=method)
        assert r.k == 1 and (r.labels == 0).all() and np.isnan(r.silhouette)
    assert list(cl.auto_k_range(3)) == [2] and list(cl.auto_k_range(4)) == [2]


def test_explanation_clusters_api(paper: tsv.Explanation) -> None:
    names = conv_layers(paper)
    n = paper.n_samples
    res = paper.clusters(names[1])
    f = paper.activations[names[1]].shape[1]
    assert res.labels.shape == (n, f) and res.labels.dtype == np.int64
    assert res.inertia.shape == (n,) and res.inertia.dtype == np.float64
    assert res.k.shape == (n,) and res.k.dtype == np.int64
    assert res.method == "kmeans" and not res.labels.flags.writeable
    one = paper.clusters(names[1], sample=2)
    assert one.labels.shape == (1, f)
    np.testing.assert_array_equal(one.labels[0], res.labels[2])
    direct = cl.cluster_filters(paper.activations[names[1]][2], paper.importance[names[1]][2])
    np.testing.assert_array_equal(direct.labels, res.labels[2])
    assert direct.inertia == res.inertia[2]
    every = paper.clusters_all(k="auto", method="hierarchical-dtw")
    assert list(every) == names
    for name in names:
        np.testing.assert_array_equal(
            every[name].labels, paper.clusters(name, k="auto", method="hierarchical-dtw").labels
        )
    assert list(paper.clusters_all(names=names[:1])) == names[:1]


def test_dense_layer_is_refused(fcn: tsv.Explanation, paper: tsv.Explanation) -> None:
    for ex in (fcn, paper):
        dense = [n for n in ex.layer_names if ex.activations[n].shape[2] == 1]
        assert dense
        with pytest.raises(ArgumentError, match="no activation pattern") as info:
            ex.clusters(dense[0])
        assert repr(dense[0]) in str(info.value)
        with pytest.raises(ArgumentError, match="no activation pattern"):
            ex.clusters_all(names=dense)


@pytest.mark.parametrize("k", [0, -1, 33, 2.0, True, "five", np.float64(3)])
def test_bad_k_is_refused(paper: tsv.Explanation, k: object) -> None:
    name = conv_layers(paper)[1]
    with pytest.raises(ArgumentError, match=r"k must be None \(round\(F / 5\)\), 'auto' or an int in 1\.\.32"):
        paper.clusters(name, k=k)


def test_bad_arguments_are_refused(paper: tsv.Explanation) -> None:
    name = conv_layers(paper)[0]
    a, imp = paper.activations[name][0], paper.importance[name][0]
    with pytest.raises(ArgumentError, match="method must be one of 'kmeans', 'hierarchical-dtw'; got 'ward'"):
        paper.clusters(name, method="ward")
    with pytest.raises(ArgumentError, match=r"sample must be None or an int in 0\.\.3; got 4"):
        paper.clusters(name, sample=4)
    with pytest.raises(ArgumentError, match="no filter layer named 'nope'"):
        paper.clusters("nope")
    with pytest.raises(ArgumentError, match="seed must be an int >= 0; got -1"):
        cl.cluster_filters(a, imp, seed=-1)
    with pytest.raises(ArgumentError, match="n_init must be an int >= 1; got 0"):
        cl.cluster_filters(a, imp, n_init=0)
    with pytest.raises(ArgumentError, match=r"importance must be one real number per filter, shape \(16,\)"):
        cl.cluster_filters(a, imp[:3])
    with pytest.raises(ArgumentError, match=r"must be a non-empty \(F, L\) array; got shape \(16,\)"):
        cl.cluster_filters(a[:, 0], imp)
    bad = np.array(a, dtype=np.float64)
    bad[0, 0] = np.nan
    with pytest.raises(ArgumentError, match="activations contain NaN or infinity"):
        cl.cluster_filters(bad, imp)


def test_import_tsviz_native_does_not_import_numba(tmp_path) -> None:
    code = "import sys, tsviz_native; assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
