"""Real time-series data sets shipped inside the package, with loaders.

Nothing is downloaded: every file lies under ``tsviz_native/datasets/data/`` and is found with
:mod:`importlib.resources`, so the loaders work from a source checkout, an editable install and an
installed wheel alike. Where each file came from (repositories, commits, citations, licences) is
written down in ``tsviz_native/datasets/SOURCES.md``; ``data/SHA256SUMS`` holds the checksums.

Shipped:

* Internet traffic (Cortez et al. 2012), six variants: ``A5M``, ``A1H``, ``A1D``, ``B5M``, ``B1H``,
  ``B1D``. The TSViz paper uses ``B5M``. Load with :func:`internet_traffic`.
* Two UCR classification sets in the sktime/aeon ``.ts`` format: ``GunPoint`` and
  ``ItalyPowerDemand``. Load with :func:`ucr`.

Examples
--------
>>> from tsviz_native import datasets
>>> sorted(datasets.available())
['internet_traffic', 'ucr']
>>> datasets.available()["ucr"]
('GunPoint', 'ItalyPowerDemand')
>>> ts = datasets.internet_traffic("B5M")
>>> ts.values.shape, ts.period
((19888,), 288)
>>> X_train, y_train = datasets.ucr("GunPoint", split="train")
>>> X_train.shape, y_train.shape
((50, 1, 150), (50,))
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

from tsviz_native._native import ArgumentError

__all__ = ["TrafficSeries", "UCRDataset", "available", "internet_traffic", "ucr"]

_TRAFFIC_VARIANTS = ("A5M", "A1H", "A1D", "B5M", "B1H", "B1D")
_UCR_NAMES = ("GunPoint", "ItalyPowerDemand")
_SPLITS = ("train", "test")

# Dominant seasonal cycle, in steps: one day for the 5-minute and hourly series, one week for the
# daily series (a daily series has no cycle within a day; its autocorrelation peaks at lag 7).
_PERIOD = {"5M": 288, "1H": 24, "1D": 7}
_STEP = {"5M": np.timedelta64(300, "s"), "1H": np.timedelta64(3600, "s"),
         "1D": np.timedelta64(86400, "s")}

_TRAFFIC_SOURCE = {
    "A": "Cortez, Rio, Rocha, Sousa (2012), Expert Systems 29(2):143-155; dataset A (transatlantic "
         "link of a private European ISP, 2005) via Hyndman's Time Series Data Library (TSDL)",
    "B": "Cortez, Rio, Rocha, Sousa (2012), Expert Systems 29(2):143-155; dataset B (UK academic "
         "backbone, UKERNA, 2004-2005) via Hyndman's Time Series Data Library (TSDL)",
}
_UCR_SOURCE = {
    "GunPoint": "UCR Time Series Archive (Dau et al. 2019); GunPoint (Ratanamahatana & Keogh, "
                "SDM 2005); files from the aeon 1.6.0 wheel (BSD-3-Clause)",
    "ItalyPowerDemand": "UCR Time Series Archive (Dau et al. 2019); ItalyPowerDemand (Keogh et "
                        "al., ICDM 2006); files from the aeon 1.6.0 wheel (BSD-3-Clause)",
}


def _data_file(*parts: str):
    """Traversable for a shipped file under ``data/``."""
    node = resources.files(__name__).joinpath("data")
    for part in parts:
        node = node.joinpath(part)
    return node


def _choose(name: object, choices: tuple[str, ...], what: str) -> str:
    """Return the canonical spelling of ``name`` (case-insensitive) or raise ArgumentError."""
    if isinstance(name, str):
        for choice in choices:
            if choice.lower() == name.strip().lower():
                return choice
    raise ArgumentError(f"unknown {what} {name!r}; valid choices: {', '.join(choices)}")


# --------------------------------------------------------------------------------------------
# Internet traffic
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TrafficSeries:
    """One variant of the Internet traffic series of Cortez et al. (2012).

    Attributes
    ----------
    values : numpy.ndarray
        Traffic per step, float64, shape ``(n,)``. Units are undocumented: "bits" per TSDL, but
        A is about 1e9-1e10 per 5 minutes and B about 1e3-1e4, so B is in some scaled unit.
        Normalise before training.
    timestamps : numpy.ndarray
        ``datetime64[s]``, shape ``(n,)``, the DataMarket labels (a regular grid). Daily labels
        are nominal: a daily value sums 24 hours starting at the series' start time, not a
        calendar day. For the A variants the labels drift from real time (see ``SOURCES.md``);
        use row positions there.
    variant : str
        One of ``A5M, A1H, A1D, B5M, B1H, B1D``.
    period : int
        Dominant seasonal cycle in steps: one day for 5-minute (288) and hourly (24) series,
        one week for daily series (7).
    step : numpy.timedelta64
        Spacing of ``timestamps``.
    source : str
        One-line citation.
    """

    values: np.ndarray
    timestamps: np.ndarray
    variant: str
    period: int
    step: np.timedelta64
    source: str

    def __len__(self) -> int:
        return int(self.values.shape[0])


def internet_traffic(variant: str = "B5M") -> TrafficSeries:
    """Load one variant of the Internet traffic data of Cortez et al. (2012).

    Parameters
    ----------
    variant : str, default "B5M"
        ``A`` (transatlantic link of a European ISP, June-July 2005) or ``B`` (UK academic
        backbone, Nov 2004 - Jan 2005) followed by the sampling: ``5M`` (5 minutes), ``1H``
        (hourly sums of 12 5-minute values) or ``1D`` (sums of 24 hourly values).
        Case-insensitive. The TSViz paper uses ``B5M``.

    Returns
    -------
    TrafficSeries
        Frozen record with ``values`` (float64), ``timestamps`` (``datetime64[s]``), ``variant``,
        ``period``, ``step`` and ``source``. The arrays are fresh copies on every call.

    Raises
    ------
    tsviz_native.ArgumentError
        For an unknown variant (the message lists the valid ones). ``ArgumentError`` is a
        ``ValueError``.

    Examples
    --------
    >>> ts = internet_traffic("B5M")
    >>> ts.values.shape
    (19888,)
    >>> ts.values.dtype, ts.timestamps.dtype
    (dtype('float64'), dtype('<M8[s]'))
    >>> print(ts.timestamps[0], ts.timestamps[-1])
    2004-11-19T09:30:00 2005-01-27T10:45:00
    >>> float(ts.values[0])
    4838.6653764143
    >>> ts.period, int(ts.step / np.timedelta64(1, "m"))
    (288, 5)
    >>> internet_traffic("b1h").variant, len(internet_traffic("B1H")), internet_traffic("B1D").period
    ('B1H', 1657, 7)
    >>> internet_traffic("C5M")
    Traceback (most recent call last):
    ...
    tsviz_native._native.ArgumentError: unknown internet-traffic variant 'C5M'; valid choices: A5M, A1H, A1D, B5M, B1H, B1D
    """
    variant = _choose(variant, _TRAFFIC_VARIANTS, "internet-traffic variant")
    text = _data_file("internet_traffic", f"{variant}.csv").read_text(encoding="ascii")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    if header != ["timestamp", "value"]:
        raise ValueError(f"{variant}.csv: unexpected header {header!r}")
    stamps: list[str] = []
    values: list[float] = []
    for row in reader:
        if not row:
            continue
        stamps.append(row[0])
        values.append(float(row[1]))
    return TrafficSeries(
        values=np.asarray(values, dtype=np.float64),
        timestamps=np.asarray(stamps, dtype="datetime64[s]"),
        variant=variant,
        period=_PERIOD[variant[1:]],
        step=_STEP[variant[1:]],
        source=_TRAFFIC_SOURCE[variant[0]],
    )


# --------------------------------------------------------------------------------------------
# UCR (.ts format)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UCRDataset:
    """A UCR classification data set with its standard train/test split.

    Attributes
    ----------
    X_train, X_test : numpy.ndarray
        float64, shape ``(n_series, n_channels, length)``.
    y_train, y_test : numpy.ndarray
        int64, shape ``(n_series,)``, class indices ``0..K-1``; index ``k`` stands for
        ``classes[k]``.
    classes : tuple of str
        The original labels, sorted (numerically when every label is a number, as here).
    name : str
        Canonical name, e.g. ``"GunPoint"``.
    source : str
        One-line citation.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    name: str
    source: str


def _sort_labels(labels) -> tuple[str, ...]:
    labels = set(labels)
    try:
        return tuple(sorted(labels, key=lambda s: (float(s), s)))
    except ValueError:
        return tuple(sorted(labels))


def _parse_ts(text: str, where: str) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Parse an sktime/aeon ``.ts`` classification file.

    Returns ``(X, labels, declared)``: ``X`` float64 ``(n, channels, length)``, the label string of
    each row, and the labels listed in ``@classLabel true ...`` (``None`` if not declared).
    Supports equal-length, univariate or multivariate data without timestamps; raises ValueError
    on anything else, including missing values (``?``).
    """
    declared: list[str] | None = None
    has_labels = True
    in_data = False
    rows: list[list[list[float]]] = []
    labels: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{where}:{lineno}: expected an @ header line before @data")
            key, _, rest = line.partition(" ")
            key = key.lower()
            words = rest.split()
            if key == "@data":
                in_data = True
            elif key == "@timestamps" and words and words[0].lower() == "true":
                raise ValueError(f"{where}: time-stamped .ts data is not supported")
            elif key == "@classlabel":
                has_labels = bool(words) and words[0].lower() == "true"
                declared = words[1:] if has_labels else None
            continue
        if "?" in line:
            raise ValueError(f"{where}:{lineno}: missing value '?' found; the shipped data sets "
                             "have none and this loader does not impute")
        fields = line.split(":")
        if not has_labels:
            raise ValueError(f"{where}: file declares no class labels")
        if len(fields) < 2:
            raise ValueError(f"{where}:{lineno}: expected 'v1,v2,...:label'")
        labels.append(fields[-1].strip())
        try:
            rows.append([[float(v) for v in dim.split(",")] for dim in fields[:-1]])
        except ValueError as exc:
            raise ValueError(f"{where}:{lineno}: {exc}") from None
    if not in_data:
        raise ValueError(f"{where}: no @data section")
    if not rows:
        raise ValueError(f"{where}: no series after @data")
    shapes = {(len(r), len(d)) for r in rows for d in r}
    if len(shapes) != 1:
        raise ValueError(f"{where}: series of unequal length or channel count: {sorted(shapes)}")
    return np.asarray(rows, dtype=np.float64), labels, declared


def _load_split(name: str, split: str) -> tuple[np.ndarray, list[str], list[str] | None]:
    fname = f"{name}_{split.upper()}.ts"
    text = _data_file("ucr", fname).read_text(encoding="utf-8")
    return _parse_ts(text, fname)


def ucr(name: str = "GunPoint", split: str | None = None):
    """Load a shipped UCR classification data set (standard train/test split).

    Parameters
    ----------
    name : str, default "GunPoint"
        ``"GunPoint"`` or ``"ItalyPowerDemand"`` (case-insensitive).
    split : {None, "train", "test"}, default None
        ``None`` returns the whole :class:`UCRDataset`; ``"train"`` or ``"test"`` returns just
        that part as ``(X, y)``.

    Returns
    -------
    UCRDataset or tuple of numpy.ndarray
        ``X`` is float64 ``(n_series, n_channels, length)``; ``y`` is int64 with the original
        labels mapped to ``0..K-1`` in their sorted order (the order of ``classes``). The mapping
        is built from train and test together, so both parts agree.

    Raises
    ------
    tsviz_native.ArgumentError
        For an unknown name or split (the message lists the valid ones).
    ValueError
        If a file holds something the parser does not support (e.g. missing values ``?``).

    Examples
    --------
    >>> ds = ucr("GunPoint")
    >>> ds.X_train.shape, ds.X_test.shape, ds.classes
    ((50, 1, 150), (150, 1, 150), ('1', '2'))
    >>> ds.y_train.dtype, np.bincount(ds.y_train).tolist(), np.bincount(ds.y_test).tolist()
    (dtype('int64'), [24, 26], [76, 74])
    >>> X, y = ucr("italypowerdemand", split="test")
    >>> X.shape, y.shape
    ((1029, 1, 24), (1029,))
    >>> ucr("ECG200")
    Traceback (most recent call last):
    ...
    tsviz_native._native.ArgumentError: unknown UCR data set 'ECG200'; valid choices: GunPoint, ItalyPowerDemand
    """
    name = _choose(name, _UCR_NAMES, "UCR data set")
    if split is not None:
        split = _choose(split, _SPLITS, "split")
    parts = {s: _load_split(name, s) for s in _SPLITS}
    found = [lab for _, labs, _ in parts.values() for lab in labs]
    declared = [lab for _, _, decl in parts.values() for lab in (decl or [])]
    undeclared = set(found) - set(declared) if declared else set()
    if undeclared:
        raise ValueError(f"{name}: labels {sorted(undeclared)} not declared in @classLabel")
    classes = _sort_labels(declared or found)
    index = {lab: k for k, lab in enumerate(classes)}
    arrays = {s: (X, np.asarray([index[lab] for lab in labs], dtype=np.int64))
              for s, (X, labs, _) in parts.items()}
    if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise ValueError(f"{name}: train and test series differ in shape")
    if split is not None:
        return arrays[split]
    return UCRDataset(
        X_train=arrays["train"][0], y_train=arrays["train"][1],
        X_test=arrays["test"][0], y_test=arrays["test"][1],
        classes=classes, name=name, source=_UCR_SOURCE[name],
    )


def available() -> dict[str, tuple[str, ...]]:
    """What is shipped: loader name -> valid names for it.

    Examples
    --------
    >>> available()
    {'internet_traffic': ('A5M', 'A1H', 'A1D', 'B5M', 'B1H', 'B1D'), 'ucr': ('GunPoint', 'ItalyPowerDemand')}
    """
    return {"internet_traffic": _TRAFFIC_VARIANTS, "ucr": _UCR_NAMES}
