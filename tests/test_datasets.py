"""Tests for the shipped data sets and their loaders (tsviz_native.datasets)."""

from __future__ import annotations

import doctest
import hashlib
from importlib import resources

import numpy as np
import pytest

import tsviz_native
from tsviz_native import datasets
from tsviz_native._native import ArgumentError

TRAFFIC = ("A5M", "A1H", "A1D", "B5M", "B1H", "B1D")
DATA = resources.files("tsviz_native.datasets").joinpath("data")


def _shipped_sums() -> dict[str, str]:
    sums = {}
    for line in DATA.joinpath("SHA256SUMS").read_text(encoding="ascii").splitlines():
        if line.strip():
            digest, path = line.split(maxsplit=1)
            sums[path.strip()] = digest
    return sums


# ---------------------------------------------------------------------------------------------
# files and provenance
# ---------------------------------------------------------------------------------------------


def test_sha256sums_cover_and_match_shipped_files():
    sums = _shipped_sums()
    expected = {f"internet_traffic/{v}.csv" for v in TRAFFIC} | {
        f"ucr/{n}_{s}.ts" for n in ("GunPoint", "ItalyPowerDemand") for s in ("TRAIN", "TEST")
    } | {"ucr/LICENSE-aeon-BSD-3-Clause.txt"}
    assert set(sums) == expected
    for path, digest in sums.items():
        data = DATA.joinpath(*path.split("/")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, path


@pytest.mark.parametrize(
    ("path", "digest"),
    [  # pinned from the shared data folder's SHA256SUMS / SOURCE.md (aeon 1.6.0 wheel)
        ("internet_traffic/B5M.csv",
         "98dc50febc40ec2244517c4fddae01c5130d37a45ca63349e0d03f1654d68daf"),
        ("ucr/GunPoint_TRAIN.ts",
         "f842401779fd9800d247d8b33121a1a4643710a19b24917dbdd9a060ca8630d5"),
        ("ucr/GunPoint_TEST.ts",
         "79332750788a6227b325b96bd0d70130c8eb707b9731f8d7dec62b7a7d36017e"),
        ("ucr/ItalyPowerDemand_TRAIN.ts",
         "341269cb7e6cef96846b30e774580beec79addb93848ba360145219115a74b7c"),
        ("ucr/ItalyPowerDemand_TEST.ts",
         "26122451f87dd0387ef90b18bc8a86c041371b8a1c068004922b939971247144"),
    ],
)
def test_pinned_checksums(path, digest):
    assert _shipped_sums()[path] == digest


def test_sources_md_names_every_shipped_file():
    text = resources.files("tsviz_native.datasets").joinpath("SOURCES.md").read_text("utf-8")
    for path in _shipped_sums():
        assert f"data/{path}" in text, path
    for needle in ("Cortez", "FinYang/tsdl", "56e091544cb81e573ee6db20c6f9cd39c70e6243",
                   "tienthienhd/gan_timeseries", "4943a5d3b78ba476ac0264f48b4f5017f2f2f50f",
                   "aeon-1.6.0", "BSD-3-Clause", "Dau", "Ratanamahatana", "Intelligent"):
        assert needle in text, needle


# ---------------------------------------------------------------------------------------------
# internet traffic
# ---------------------------------------------------------------------------------------------


def test_b5m_paper_series():
    ts = datasets.internet_traffic("B5M")
    assert isinstance(ts, datasets.TrafficSeries)
    assert ts.variant == "B5M"
    assert ts.values.dtype == np.float64 and ts.values.shape == (19888,)
    assert ts.timestamps.dtype == np.dtype("datetime64[s]") and ts.timestamps.shape == (19888,)
    assert ts.values[0] == 4838.6653764143
    assert ts.values[1] == 4845.17660886383
    assert ts.values[-1] == 6511.0139275416
    assert ts.timestamps[0] == np.datetime64("2004-11-19T09:30:00")
    assert ts.timestamps[-1] == np.datetime64("2005-01-27T10:45:00")
    assert np.all(np.diff(ts.timestamps) == np.timedelta64(5, "m"))
    assert ts.step == np.timedelta64(5, "m")
    assert ts.period == 288
    assert ts.values.min() == pytest.approx(1060.27, abs=0.01)
    assert ts.values.max() == pytest.approx(10670.69, abs=0.01)
    assert "Cortez" in ts.source and "\n" not in ts.source
    assert len(ts) == 19888


@pytest.mark.parametrize(
    ("variant", "n", "first", "last", "step", "period"),
    [
        ("A5M", 14772, "2005-06-07T07:00", "2005-07-28T13:55", np.timedelta64(5, "m"), 288),
        ("A1H", 1231, "2005-06-07T07:00", "2005-07-28T13:00", np.timedelta64(1, "h"), 24),
        ("A1D", 51, "2005-06-07", "2005-07-27", np.timedelta64(1, "D"), 7),
        ("B5M", 19888, "2004-11-19T09:30", "2005-01-27T10:45", np.timedelta64(5, "m"), 288),
        ("B1H", 1657, "2004-11-19T09:30", "2005-01-27T09:30", np.timedelta64(1, "h"), 24),
        ("B1D", 69, "2004-11-19", "2005-01-26", np.timedelta64(1, "D"), 7),
    ],
)
def test_all_traffic_variants(variant, n, first, last, step, period):
    ts = datasets.internet_traffic(variant.lower())  # case-insensitive
    assert ts.variant == variant
    assert ts.values.shape == ts.timestamps.shape == (n,)
    assert ts.timestamps[0] == np.datetime64(first, "s")
    assert ts.timestamps[-1] == np.datetime64(last, "s")
    assert np.all(np.diff(ts.timestamps) == step)
    assert ts.step == step and ts.period == period
    assert np.all(np.isfinite(ts.values)) and np.all(ts.values > 0)


@pytest.mark.parametrize("which", ["A", "B"])
def test_traffic_aggregation(which):
    """1H is the sum of 12 consecutive 5M values; 1D the sum of 24 consecutive 1H values."""
    m5 = datasets.internet_traffic(f"{which}5M").values
    h1 = datasets.internet_traffic(f"{which}1H").values
    d1 = datasets.internet_traffic(f"{which}1D").values
    np.testing.assert_allclose(m5[: 12 * len(h1)].reshape(-1, 12).sum(axis=1), h1, rtol=1e-9)
    np.testing.assert_allclose(h1[: 24 * len(d1)].reshape(-1, 24).sum(axis=1), d1, rtol=1e-9)


def test_traffic_returns_fresh_arrays():
    a = datasets.internet_traffic()
    b = datasets.internet_traffic()
    assert a.variant == "B5M"
    a.values[0] = -1.0
    assert b.values[0] == 4838.6653764143
    with pytest.raises(AttributeError):
        a.variant = "A5M"  # frozen


@pytest.mark.parametrize("bad", ["C5M", "B5", "", "B5M.csv", None, 5])
def test_traffic_unknown_variant(bad):
    with pytest.raises(ArgumentError) as info:
        datasets.internet_traffic(bad)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, tsviz_native.ArgumentError)
    for v in TRAFFIC:
        assert v in str(info.value)


# ---------------------------------------------------------------------------------------------
# UCR
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "train_shape", "test_shape", "train_counts", "test_counts"),
    [
        ("GunPoint", (50, 1, 150), (150, 1, 150), [24, 26], [76, 74]),
        ("ItalyPowerDemand", (67, 1, 24), (1029, 1, 24), [34, 33], [513, 516]),
    ],
)
def test_ucr_shapes_and_labels(name, train_shape, test_shape, train_counts, test_counts):
    ds = datasets.ucr(name)
    assert isinstance(ds, datasets.UCRDataset)
    assert ds.name == name
    assert ds.classes == ("1", "2")
    assert ds.X_train.dtype == ds.X_test.dtype == np.float64
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    assert ds.X_train.shape == train_shape and ds.X_test.shape == test_shape
    assert ds.y_train.shape == train_shape[:1] and ds.y_test.shape == test_shape[:1]
    assert np.bincount(ds.y_train).tolist() == train_counts
    assert np.bincount(ds.y_test).tolist() == test_counts
    assert np.all(np.isfinite(ds.X_train)) and np.all(np.isfinite(ds.X_test))
    # the series are z-normalised
    np.testing.assert_allclose(ds.X_train.mean(axis=-1), 0.0, atol=1e-3)
    assert "UCR" in ds.source and "\n" not in ds.source


def test_ucr_values_match_file_text():
    X, y = datasets.ucr("GunPoint", split="train")
    assert X[0, 0, 0] == -0.6478854
    assert X[0, 0, 1] == -0.64199155
    X, y = datasets.ucr("GunPoint", split="test")
    assert X[0, 0, 0] == -1.1250133
    assert X[-1, 0, -1] == -1.222043 and y[-1] == 0  # last row ends ",-1.222043:1"
    X, y = datasets.ucr("ItalyPowerDemand", split="train")
    assert X[0, 0, 0] == -0.71051757 and X[0, 0, 7] == 0.045966947
    assert X[-1, 0, -1] == 1.1719652 and y[-1] == 1  # last row ends ",1.1719652:2"
    X, y = datasets.ucr("ItalyPowerDemand", split="test")
    assert X[0, 0, 0] == 0.47297301


def test_ucr_split_matches_full():
    ds = datasets.ucr("ItalyPowerDemand")
    X, y = datasets.ucr("italypowerdemand", split="TEST")
    np.testing.assert_array_equal(X, ds.X_test)
    np.testing.assert_array_equal(y, ds.y_test)
    X, y = datasets.ucr(split="train")  # default name is GunPoint
    assert X.shape == (50, 1, 150)


@pytest.mark.parametrize("bad", ["ECG200", "gun_point", "", None])
def test_ucr_unknown_name(bad):
    with pytest.raises(ArgumentError) as info:
        datasets.ucr(bad)
    assert "GunPoint" in str(info.value) and "ItalyPowerDemand" in str(info.value)


@pytest.mark.parametrize("bad", ["validation", "all", ""])
def test_ucr_unknown_split(bad):
    with pytest.raises(ArgumentError) as info:
        datasets.ucr("GunPoint", split=bad)
    assert "train" in str(info.value) and "test" in str(info.value)


def test_ts_parser_multivariate_and_errors():
    text = (
        "# comment\n@problemName Toy\n@timeStamps false\n@univariate false\n"
        "@classLabel true a b\n@data\n1,2,3:4,5,6:b\n7,8,9:10,11,12:a\n"
    )
    X, labels, declared = datasets._parse_ts(text, "toy.ts")
    assert X.shape == (2, 2, 3) and X[1, 1, 2] == 12.0
    assert labels == ["b", "a"] and declared == ["a", "b"]
    with pytest.raises(ValueError, match="missing value"):
        datasets._parse_ts("@classLabel true 1 2\n@data\n1,?,3:1\n", "m.ts")
    with pytest.raises(ValueError, match="unequal"):
        datasets._parse_ts("@classLabel true 1 2\n@data\n1,2,3:1\n1,2:2\n", "u.ts")
    with pytest.raises(ValueError, match="@data"):
        datasets._parse_ts("@classLabel true 1 2\n", "e.ts")


def test_label_sort_is_numeric_when_possible():
    assert datasets._sort_labels(["10", "2", "1"]) == ("1", "2", "10")
    assert datasets._sort_labels(["b", "a", "10"]) == ("10", "a", "b")


# ---------------------------------------------------------------------------------------------
# misc
# ---------------------------------------------------------------------------------------------


def test_available():
    av = datasets.available()
    assert av == {"internet_traffic": TRAFFIC, "ucr": ("GunPoint", "ItalyPowerDemand")}
    for v in av["internet_traffic"]:
        assert datasets.internet_traffic(v).variant == v
    for n in av["ucr"]:
        assert datasets.ucr(n).name == n


def test_doctests():
    result = doctest.testmod(datasets, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 15
    assert result.failed == 0
