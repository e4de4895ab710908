"""Filter clustering (docs/definitions.md, "Filter clustering"; paper Section 3.3).

Each filter of a layer is encoded by its activation row ``a^l[f, :]`` of one sample, min-max
scaled per row to [0, 1] so that clusters group activation *patterns*, not magnitudes (a
constant row, e.g. a dead ReLU, becomes zeros). Two methods:

``"kmeans"`` (the paper's, and the default)
    k-means with Euclidean distance. Seeding is k-means++ with greedy local trials, as in
    scikit-learn: the first center is a uniformly drawn row; each further center is chosen
    among ``2 + int(log k)`` candidates drawn by D^2 sampling, keeping the candidate that lowers
    the potential (sum of squared distances to the nearest center) most. The greedy trials are
    what make the seeding reliably good. Lloyd iterations run until the assignment stops
    changing or ``max_iter`` (docs/definitions.md); a cluster left empty is re-seeded with the point
    farthest from its own center (taken from a cluster with more than one member, so all k
    clusters are always non-empty). Each restart then ends with Hartigan's single-filter
    transfers: a filter moves to another cluster when that lowers the inertia
    (``n_b / (n_b + 1) |x - c_b|^2 < n_a / (n_a - 1) |x - c_a|^2``), sweeping until none does
    (at most ``max_iter`` sweeps). Every Hartigan fixed point is also a Lloyd fixed point
    (each filter nearest to its own cluster mean), so the documented stopping rule still holds, but
    poorer Lloyd fixed points are left behind: on the shipped models' activations this lowers
    the median restart's inertia by 5-8% against plain Lloyd, and beats scikit-learn's
    ``KMeans`` (pure Lloyd) at the same ``n_init``. ``n_init`` restarts, each with its own
    stream derived from ``seed`` by ``numpy.random.SeedSequence``; the lowest inertia wins
    (the first restart on a tie).

``"hierarchical-dtw"`` (the original TSViz code's default)
    Average-linkage (UPGMA) agglomerative clustering on the dynamic-time-warping distances of
    the scaled rows, cut into k clusters. DTW is the classic O(L^2) recursion with absolute
    difference cost and no warping window: ``D[i, j] = |a_i - b_j| + min(D[i-1, j], D[i, j-1],
    D[i-1, j-1])``, the distance being ``D[L-1, L-1]``. On a tie for the closest pair of
    clusters the pair with the lowest (i, j) indices merges first.

For both methods ``inertia`` is the sum of squared Euclidean distances of the scaled rows to
the mean of their cluster, so the two are comparable.

The number of clusters ``k``:
- ``None``: ``max(1, round(F / 5))`` (docs/definitions.md). ``F / 5`` never ends in exactly .5 for an
  integer F, so the rounding mode does not matter; we round half up (``floor(F / 5 + 0.5)``).
- an int in ``1..F``.
- ``"auto"``: the k in ``2..min(F - 1, max(2, F // 2), 20)`` with the highest mean silhouette
  (the smallest such k on a tie), as the original TSViz code chose it; the silhouette uses
  Euclidean distances of the scaled rows for k-means and the DTW distances for
  hierarchical-dtw. Layers with fewer than 3 filters get k = 1. Each candidate k is clustered
  exactly as an explicit ``k`` with the same seed would be.

Clusters are numbered by descending mean importance of their members, so cluster 0 is the most
important; clusters of equal mean importance are ordered by their lowest filter index.

The silhouette follows Rousseeuw (and scikit-learn): a filter alone in its cluster scores 0,
as does a filter whose intra- and nearest-cluster mean distances are both 0; it is ``nan`` when
k == 1 and 0 when k == F (every cluster a singleton).

Determinism does not depend on numba's RNG: the uniform numbers each restart consumes are drawn
by numpy's ``Generator`` and handed to the kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

from tsviz_native._native import ArgumentError

Method = Literal["kmeans", "hierarchical-dtw"]
METHODS: tuple[str, ...] = ("kmeans", "hierarchical-dtw")
AUTO_K_MAX = 20


# ---------------------------------------------------------------------------------------------
# Kernels. Private: they trust their arguments (C-contiguous float64 / int64, validated shapes).
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _scale_rows(a):
    # docs/definitions.md: per-row min-max scaling; a constant row becomes zeros.
    n, m = a.shape
    out = np.zeros((n, m))
    for f in range(n):
        lo = a[f, 0]
        hi = a[f, 0]
        for i in range(1, m):
            v = a[f, i]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        span = hi - lo
        if span > 0.0:
            for i in range(m):
                out[f, i] = (a[f, i] - lo) / span
    return out


@njit(cache=True)
def _sqdist(x, y):
    s = 0.0
    for i in range(x.shape[0]):
        d = x[i] - y[i]
        s += d * d
    return s


@njit(cache=True)
def _euclidean_matrix(x):
    n = x.shape[0]
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            v = math.sqrt(_sqdist(x[i], x[j]))
            d[i, j] = v
            d[j, i] = v
    return d


@njit(cache=True)
def _first_above(cum, r):
    # First index with cum[i] > r: a point of zero D^2 weight is never drawn.
    lo = 0
    hi = cum.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] > r:
            hi = mid
        else:
            lo = mid + 1
    if lo > cum.shape[0] - 1:
        lo = cum.shape[0] - 1
    return lo


@njit(cache=True)
def _kmeanspp(x, k, n_trials, u):
    # u holds 1 + (k - 1) * n_trials uniforms in [0, 1).
    n, m = x.shape
    centers = np.empty((k, m))
    first = int(u[0] * n)
    if first > n - 1:
        first = n - 1
    centers[0, :] = x[first]
    closest = np.empty(n)
    for i in range(n):
        closest[i] = _sqdist(x[i], x[first])
    cum = np.empty(n)
    trial = np.empty((n_trials, n))
    pos = 1
    for c in range(1, k):
        total = 0.0
        for i in range(n):
            total += closest[i]
            cum[i] = total
        best_pot = np.inf
        best_t = 0
        best_idx = 0
        for t in range(n_trials):
            idx = _first_above(cum, u[pos] * total)
            pos += 1
            pot = 0.0
            for i in range(n):
                d = _sqdist(x[i], x[idx])
                if closest[i] < d:
                    d = closest[i]
                trial[t, i] = d
                pot += d
            if pot < best_pot:
                best_pot = pot
                best_t = t
                best_idx = idx
        centers[c, :] = x[best_idx]
        closest[:] = trial[best_t]
    return centers


@njit(cache=True)
def _assign(x, centers, labels):
    n = x.shape[0]
    k = centers.shape[0]
    changed = 0
    for i in range(n):
        best = np.inf
        bj = 0
        for j in range(k):
            d = _sqdist(x[i], centers[j])
            if d < best:
                best = d
                bj = j
        if bj != labels[i]:
            labels[i] = bj
            changed += 1
    return changed


@njit(cache=True)
def _means(x, labels, k, centers, counts):
    n = x.shape[0]
    centers[:, :] = 0.0
    counts[:] = 0
    for i in range(n):
        counts[labels[i]] += 1
        centers[labels[i], :] += x[i]
    for j in range(k):
        if counts[j] > 0:
            centers[j, :] /= counts[j]


@njit(cache=True)
def _update_centers(x, labels, k, centers, counts):
    # Means of the clusters; an empty cluster takes the point farthest from its own center
    # among clusters with more than one member (one exists whenever a cluster is empty, as
    # k <= n), so every cluster keeps at least one member.
    n = x.shape[0]
    _means(x, labels, k, centers, counts)
    empty = 0
    for j in range(k):
        if counts[j] == 0:
            empty += 1
    if empty == 0:
        return
    far = np.empty(n)
    for i in range(n):
        far[i] = _sqdist(x[i], centers[labels[i]])
    for j in range(k):
        if counts[j] != 0:
            continue
        bi = -1
        bd = -1.0
        for i in range(n):
            if counts[labels[i]] > 1 and far[i] > bd:
                bd = far[i]
                bi = i
        counts[labels[bi]] -= 1
        labels[bi] = j
        counts[j] = 1
        far[bi] = -2.0
    _means(x, labels, k, centers, counts)


@njit(cache=True)
def _hartigan(x, labels, k, centers, counts, max_sweeps):
    # Single-filter transfers that lower the inertia (Hartigan's rule): moving x from a to b
    # changes the inertia by n_b / (n_b + 1) |x - c_b|^2 - n_a / (n_a - 1) |x - c_a|^2.
    # Starts from means (after Lloyd); every move strictly lowers the inertia, so it stops,
    # and its fixed points are also Lloyd fixed points.
    n = x.shape[0]
    for _ in range(max_sweeps):
        moved = 0
        for i in range(n):
            a = labels[i]
            na = counts[a]
            if na <= 1:
                continue
            remove = na / (na - 1.0) * _sqdist(x[i], centers[a])
            best = remove
            bb = -1
            for b in range(k):
                if b == a:
                    continue
                nb = counts[b]
                add = nb / (nb + 1.0) * _sqdist(x[i], centers[b])
                if add < best:
                    best = add
                    bb = b
            if bb >= 0 and best < remove * (1.0 - 1e-12):
                nb = counts[bb]
                centers[a, :] = (na * centers[a] - x[i]) / (na - 1.0)
                centers[bb, :] = (nb * centers[bb] + x[i]) / (nb + 1.0)
                counts[a] = na - 1
                counts[bb] = nb + 1
                labels[i] = bb
                moved += 1
        # Fresh means after each sweep, so incremental updates cannot drift.
        _means(x, labels, k, centers, counts)
        if moved == 0:
            break


@njit(cache=True)
def _label_inertia(x, labels, k):
    # Sum of squared distances of the rows to the mean of their cluster.
    centers = np.empty((k, x.shape[1]))
    counts = np.empty(k, dtype=np.int64)
    _means(x, labels, k, centers, counts)
    s = 0.0
    for i in range(x.shape[0]):
        s += _sqdist(x[i], centers[labels[i]])
    return s


@njit(cache=True)
def _kmeans_single(x, k, n_trials, u, max_iter, refine):
    n = x.shape[0]
    centers = _kmeanspp(x, k, n_trials, u)
    counts = np.empty(k, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    _assign(x, centers, labels)
    for _ in range(max_iter):
        _update_centers(x, labels, k, centers, counts)
        if _assign(x, centers, labels) == 0:
            break
    _update_centers(x, labels, k, centers, counts)
    if refine:
        _hartigan(x, labels, k, centers, counts, max_iter)
    return labels, _label_inertia(x, labels, k)


@njit(cache=True)
def _kmeans(x, k, n_trials, uniforms, max_iter, refine=True):
    # uniforms: (n_init, 1 + (k - 1) * n_trials), one row per restart.
    best_labels = np.zeros(x.shape[0], dtype=np.int64)
    best_inertia = np.inf
    for r in range(uniforms.shape[0]):
        labels, inertia = _kmeans_single(x, k, n_trials, uniforms[r], max_iter, refine)
        if inertia < best_inertia:
            best_inertia = inertia
            best_labels = labels
    return best_labels, best_inertia


_DTW_LANES = 8


@njit(cache=True)
def _dtw_rows(a, b, prev, cur, out):
    # Classic DTW, absolute-difference cost, no window, of a against every row of b (at most
    # _DTW_LANES). The recursions are independent; interleaving them hides the latency of each
    # one's serial dependency (about twice as fast as one at a time). prev, cur: (L, rows).
    n = a.shape[0]
    w, m = b.shape
    for t in range(w):
        acc = 0.0
        for j in range(m):
            acc += abs(a[0] - b[t, j])
            prev[j, t] = acc
    for i in range(1, n):
        ai = a[i]
        for t in range(w):
            cur[0, t] = prev[0, t] + abs(ai - b[t, 0])
        for j in range(1, m):
            for t in range(w):
                best = prev[j - 1, t]
                if prev[j, t] < best:
                    best = prev[j, t]
                if cur[j - 1, t] < best:
                    best = cur[j - 1, t]
                cur[j, t] = abs(ai - b[t, j]) + best
        prev, cur = cur, prev
    for t in range(w):
        out[t] = prev[m - 1, t]


@njit(cache=True)
def _dtw_matrix(x):
    n, m = x.shape
    d = np.zeros((n, n))
    prev = np.empty((m, _DTW_LANES))
    cur = np.empty((m, _DTW_LANES))
    out = np.empty(_DTW_LANES)
    for i in range(n):
        for j0 in range(i + 1, n, _DTW_LANES):
            w = min(_DTW_LANES, n - j0)
            _dtw_rows(x[i], x[j0 : j0 + w], prev[:, :w], cur[:, :w], out[:w])
            for t in range(w):
                d[i, j0 + t] = out[t]
                d[j0 + t, i] = out[t]
    return d


@njit(cache=True)
def _average_linkage(dist, k):
    # UPGMA by the Lance-Williams update, merging until k clusters remain. Returns, for every
    # point, the id (lowest original index) of its cluster.
    n = dist.shape[0]
    d = dist.copy()
    size = np.ones(n)
    active = np.ones(n, dtype=np.bool_)
    owner = np.arange(n)
    for _ in range(n - k):
        best = np.inf
        bi = -1
        bj = -1
        for i in range(n):
            if not active[i]:
                continue
            for j in range(i + 1, n):
                if active[j] and d[i, j] < best:
                    best = d[i, j]
                    bi = i
                    bj = j
        si = size[bi]
        sj = size[bj]
        for o in range(n):
            if active[o] and o != bi and o != bj:
                v = (si * d[bi, o] + sj * d[bj, o]) / (si + sj)
                d[bi, o] = v
                d[o, bi] = v
        size[bi] = si + sj
        active[bj] = False
        for p in range(n):
            if owner[p] == bj:
                owner[p] = bi
    return owner


@njit(cache=True)
def _silhouette(dist, labels, k):
    # Mean silhouette (Rousseeuw); singletons and a == b == 0 score 0, as in scikit-learn.
    n = dist.shape[0]
    if k < 2:
        return np.nan
    counts = np.zeros(k, dtype=np.int64)
    for i in range(n):
        counts[labels[i]] += 1
    sums = np.empty(k)
    total = 0.0
    for i in range(n):
        li = labels[i]
        if counts[li] <= 1:
            continue
        sums[:] = 0.0
        for j in range(n):
            sums[labels[j]] += dist[i, j]
        a = sums[li] / (counts[li] - 1)
        b = np.inf
        for c in range(k):
            if c != li and counts[c] > 0:
                v = sums[c] / counts[c]
                if v < b:
                    b = v
        top = a if a > b else b
        if top > 0.0:
            total += (b - a) / top
    return total / n


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterResult:
    """Clusters of one sample's filters.

    Attributes
    ----------
    labels : (F,) int64, cluster of every filter; cluster 0 has the highest mean importance.
    k : the number of clusters (every one of ``0..k-1`` has a member).
    inertia : sum of squared Euclidean distances of the scaled rows to their cluster means.
    method : ``"kmeans"`` or ``"hierarchical-dtw"``.
    silhouette : mean silhouette of the clustering (Euclidean for k-means, DTW for
        hierarchical-dtw); ``nan`` when k == 1.
    """

    labels: np.ndarray
    k: int
    inertia: float
    method: str
    silhouette: float


@dataclass(frozen=True)
class FilterClusters:
    """Clusters of one layer's filters for every sample of a batch (see :class:`ClusterResult`).

    Attributes
    ----------
    labels : (N, F) int64.
    inertia : (N,) float64.
    k : (N,) int64 (varies per sample only with ``k="auto"``).
    silhouette : (N,) float64.
    method : ``"kmeans"`` or ``"hierarchical-dtw"``.
    """

    labels: np.ndarray
    inertia: np.ndarray
    k: np.ndarray
    silhouette: np.ndarray
    method: str


def default_k(n_filters: int) -> int:
    """docs/definitions.md: ``max(1, round(n_filters / 5))``, rounding half up."""
    return max(1, int(math.floor(n_filters / 5 + 0.5)))


def auto_k_range(n_filters: int) -> range:
    """The k tried by ``k="auto"``; empty when ``n_filters < 3`` (k = 1 then)."""
    if n_filters < 3:
        return range(0)
    return range(2, min(n_filters - 1, max(2, n_filters // 2), AUTO_K_MAX) + 1)


def scale_rows(activations: np.ndarray) -> np.ndarray:
    """Per-row min-max scaling to [0, 1] of a ``(F, L)`` array (float64); constant rows -> 0."""
    return _scale_rows(_as_rows(activations))


def dtw_matrix(rows: np.ndarray) -> np.ndarray:
    """``(F, F)`` DTW distances between the rows of ``(F, L)`` (no scaling applied)."""
    return _dtw_matrix(_as_rows(rows))


def euclidean_matrix(rows: np.ndarray) -> np.ndarray:
    """``(F, F)`` Euclidean distances between the rows of ``(F, L)``."""
    return _euclidean_matrix(_as_rows(rows))


def silhouette(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` (ids ``0..k-1``) under the ``(F, F)`` distance matrix."""
    d = np.ascontiguousarray(dist, dtype=np.float64)
    lab = np.ascontiguousarray(labels, dtype=np.int64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or lab.shape != (d.shape[0],):
        raise ArgumentError(
            f"dist must be (F, F) and labels (F,); got {d.shape} and {lab.shape}"
        )
    if lab.size and lab.min() < 0:
        raise ArgumentError("labels must be non-negative cluster ids")
    if len(np.unique(lab)) < 2:
        return math.nan
    return float(_silhouette(d, lab, int(lab.max()) + 1))


def cluster_filters(
    activations: np.ndarray,
    importance: np.ndarray,
    k: int | Literal["auto"] | None = None,
    method: Method = "kmeans",
    seed: int = 0,
    n_init: int = 10,
    max_iter: int = 300,
) -> ClusterResult:
    """Clusters the filters of one layer for one sample by their activation pattern.

    Parameters
    ----------
    activations : (F, L) activations ``a^l`` of the layer's F filters (one sample).
    importance : (F,) importance of the filters; orders the clusters.
    k : None for ``max(1, round(F / 5))``, an int in ``1..F``, or ``"auto"`` for the
        silhouette-best k in ``2..min(F - 1, max(2, F // 2), 20)``.
    method : ``"kmeans"`` (k-means++ seeding, Lloyd iterations) or ``"hierarchical-dtw"``
        (average linkage on DTW distances).
    seed : non-negative int; identical seeds give identical results.
    n_init : k-means restarts (the lowest inertia wins); ignored by hierarchical-dtw.
    max_iter : cap on Lloyd iterations per restart; ignored by hierarchical-dtw.

    Returns
    -------
    ClusterResult

    Examples
    --------
    >>> import numpy as np
    >>> from tsviz_native.analysis.clustering import cluster_filters
    >>> t = np.linspace(0, 1, 30)
    >>> acts = np.stack([t, 2 * t + 1, -t, 3 - t, t**2])
    >>> res = cluster_filters(acts, importance=np.array([0.1, 0.2, 1.0, 0.5, 0.9]), k=2)
    >>> res.labels.tolist()  # falling rows are the more important cluster, 0
    [1, 1, 0, 0, 1]
    """
    x = _as_rows(activations)
    imp = _as_importance(importance, x.shape[0])
    method, k, seed, n_init, max_iter = _as_options(method, k, x.shape[0], seed, n_init, max_iter)
    return _cluster(_scale_rows(x), imp, k, method, seed, n_init, max_iter)


def cluster_batch(
    activations: np.ndarray,
    importance: np.ndarray,
    k: int | Literal["auto"] | None = None,
    method: Method = "kmeans",
    seed: int = 0,
    n_init: int = 10,
    max_iter: int = 300,
) -> FilterClusters:
    """:func:`cluster_filters` for every sample of ``(N, F, L)`` activations and ``(N, F)``
    importance, each sample with the same ``seed``."""
    a = np.asarray(activations)
    imp = np.asarray(importance)
    if a.ndim != 3:
        raise ArgumentError(f"activations must be (N, F, L); got shape {a.shape}")
    if imp.shape != a.shape[:2]:
        raise ArgumentError(
            f"importance must be (N, F) = {a.shape[:2]} to match the activations; got {imp.shape}"
        )
    n, f = a.shape[0], a.shape[1]
    method, k, seed, n_init, max_iter = _as_options(method, k, f, seed, n_init, max_iter)
    labels = np.empty((n, f), dtype=np.int64)
    inertia = np.empty(n)
    ks = np.empty(n, dtype=np.int64)
    sil = np.empty(n)
    for s in range(n):
        x = _as_rows(a[s])
        r = _cluster(_scale_rows(x), _as_importance(imp[s], f), k, method, seed, n_init, max_iter)
        labels[s], inertia[s], ks[s], sil[s] = r.labels, r.inertia, r.k, r.silhouette
    return FilterClusters(
        labels=_frozen(labels), inertia=_frozen(inertia), k=_frozen(ks),
        silhouette=_frozen(sil), method=method,
    )


# ---------------------------------------------------------------------------------------------
# Validation and dispatch.
# ---------------------------------------------------------------------------------------------


def _as_rows(a: object) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ArgumentError(
            f"activations of one sample must be a non-empty (F, L) array; got shape {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise ArgumentError(f"activations must be real numbers; got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ArgumentError("activations contain NaN or infinity")
    return out


def _as_importance(imp: object, n_filters: int) -> np.ndarray:
    arr = np.asarray(imp)
    if arr.shape != (n_filters,) or arr.dtype.kind not in "biuf":
        raise ArgumentError(
            f"importance must be one real number per filter, shape ({n_filters},); "
            f"got {arr.dtype} {arr.shape}"
        )
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ArgumentError("importance contains NaN or infinity")
    return out


def _as_options(method: object, k: object, n_filters: int, seed: object, n_init: object,
                max_iter: object) -> tuple[str, int | str, int, int, int]:
    """The validated options shared by cluster_filters and cluster_batch."""
    return (_as_method(method), _as_k(k, n_filters), _as_count(seed, "seed", 0),
            _as_count(n_init, "n_init", 1), _as_count(max_iter, "max_iter", 1))


def _as_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ArgumentError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    return method


def _as_k(k: object, n_filters: int) -> int | str:
    if k is None:
        return default_k(n_filters)
    if isinstance(k, str) and k == "auto":
        return k
    is_int = isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))
    if is_int and 1 <= int(k) <= n_filters:
        return int(k)
    raise ArgumentError(
        f"k must be None (round(F / 5)), 'auto' or an int in 1..{n_filters} "
        f"(the layer has {n_filters} filters); got {k!r}"
    )


def _as_count(v: object, what: str, low: int) -> int:
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and int(v) >= low:
        return int(v)
    raise ArgumentError(f"{what} must be an int >= {low}; got {v!r}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _restart_uniforms(seed: int, n_init: int, k: int, n_trials: int) -> np.ndarray:
    # One independent stream per restart, derived from the seed (numpy's SeedSequence).
    m = 1 + (k - 1) * n_trials
    children = np.random.SeedSequence(seed).spawn(n_init)
    return np.stack([np.random.default_rng(c).random(m) for c in children])


def _fixed_k(x: np.ndarray, k: int, method: str, seed: int, n_init: int, max_iter: int,
             dtw: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Raw labels (ids 0..k-1, any order) and inertia for one k."""
    if method == "kmeans":
        n_trials = 2 + int(np.log(k))
        labels, inertia = _kmeans(x, k, n_trials, _restart_uniforms(seed, n_init, k, n_trials), max_iter)
        return labels, float(inertia)
    owner = _average_linkage(dtw, k)
    labels = np.unique(owner, return_inverse=True)[1].astype(np.int64)
    return labels, float(_label_inertia(x, labels, k))


def _cluster(x: np.ndarray, imp: np.ndarray, k: int | str, method: str, seed: int,
             n_init: int, max_iter: int) -> ClusterResult:
    n = x.shape[0]
    dtw = _dtw_matrix(x) if method == "hierarchical-dtw" else None
    if k == "auto":
        candidates = auto_k_range(n)
        if not candidates:
            labels, inertia = _fixed_k(x, 1, method, seed, n_init, max_iter, dtw)
            return ClusterResult(_frozen(_renumber(labels, imp, 1)), 1, inertia, method, math.nan)
        dist = dtw if dtw is not None else _euclidean_matrix(x)
        best = None
        for kk in candidates:
            labels, inertia = _fixed_k(x, kk, method, seed, n_init, max_iter, dtw)
            sil = float(_silhouette(dist, labels, kk))
            if best is None or sil > best[3]:
                best = (labels, kk, inertia, sil)
        labels, kk, inertia, sil = best
        return ClusterResult(_frozen(_renumber(labels, imp, kk)), kk, inertia, method, sil)
    labels, inertia = _fixed_k(x, k, method, seed, n_init, max_iter, dtw)
    if k == 1:
        sil = math.nan
    else:
        dist = dtw if dtw is not None else _euclidean_matrix(x)
        sil = float(_silhouette(dist, labels, k))
    return ClusterResult(_frozen(_renumber(labels, imp, k)), k, inertia, method, sil)


def _renumber(labels: np.ndarray, imp: np.ndarray, k: int) -> np.ndarray:
    # docs/definitions.md: clusters by descending mean importance (cluster 0 the most important); equal
    # means are ordered by the cluster's lowest filter index.
    counts = np.bincount(labels, minlength=k)
    mean = np.bincount(labels, weights=imp, minlength=k) / counts
    lowest = np.full(k, labels.shape[0])
    np.minimum.at(lowest, labels, np.arange(labels.shape[0]))
    order = np.lexsort((lowest, -mean))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels]
