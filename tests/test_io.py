"""Reading windows from .npy, .npz and .csv files (tsviz_native.io), which the command line and
the viewer share: every layout reads back to the windows written, and every refusal names the
file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import model_path, real_windows
from tsviz_native import io


@pytest.fixture(scope="module")
def paper() -> tsv.Model:
    return tsv.load(model_path("paper_net_op17"))  # NCT (2, 50)


@pytest.fixture(scope="module")
def keras() -> tsv.Model:
    return tsv.load(model_path("keras_paper_net_op17"))  # NTC (50, 2)


def test_npy_npz_and_csv_give_the_same_windows(tmp_path: Path, paper: tsv.Model) -> None:
    X = real_windows((2, 50), "NCT", 5)
    y = np.arange(5, dtype=np.float32)
    np.save(tmp_path / "w.npy", X)
    np.save(tmp_path / "rows.npy", X.reshape(5, 100))
    np.savez(tmp_path / "w.npz", X=X, y=y)
    np.savetxt(tmp_path / "w.csv", X.reshape(5, 100), delimiter=",", fmt="%.9g")
    for name in ("w.npy", "rows.npy", "w.npz", "w.csv"):
        got, targets = io.read_windows(paper, tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (5, 2, 50)
        np.testing.assert_array_equal(got, X)
        if name == "w.npz":
            np.testing.assert_array_equal(targets, y)
        else:
            assert targets is None


def test_rows_of_a_channels_last_model_are_time_major(tmp_path: Path, keras: tsv.Model) -> None:
    X = real_windows((50, 2), "NTC", 3)
    np.savetxt(tmp_path / "w.csv", X.reshape(3, 100), delimiter=",", fmt="%.9g")
    got, _ = io.read_windows(keras, tmp_path / "w.csv")
    np.testing.assert_array_equal(got, X)
    assert io.row_layout(keras).startswith("2 channels x 50 steps = 100 values, time-major")


def test_the_cli_and_the_viewer_read_through_it(tmp_path: Path, paper: tsv.Model) -> None:
    from tsviz_native import cli
    from tsviz_native.viewer.commands import load_inputs

    assert not hasattr(cli, "_read_array") and not hasattr(cli, "_windows")
    X = real_windows((2, 50), "NCT", 4)
    np.savez(tmp_path / "w.npz", X=X, y=np.arange(4))
    _, got, truth = load_inputs(str(model_path("paper_net_op17")), str(tmp_path / "w.npz"))
    np.testing.assert_array_equal(got, X)
    np.testing.assert_array_equal(truth, np.arange(4))
    with pytest.raises(tsv.ShapeError, match=r"w\.csv: a row has 7 values"):
        np.savetxt(tmp_path / "w.csv", np.zeros((2, 7)), delimiter=",")
        load_inputs(str(model_path("paper_net_op17")), str(tmp_path / "w.csv"))


@pytest.mark.parametrize(
    "name, write, exc, message",
    [
        ("w.npy", None, tsv.ArgumentError, "{path}: no such file"),
        ("w.npy", lambda p: p.mkdir(), tsv.ArgumentError, "{path}: is a folder; expected a .npy, .npz or .csv file"),
        ("w.txt", lambda p: p.write_text("1,2"), tsv.ArgumentError, "{path}: expected a .npy, .npz or .csv file"),
        ("w.npy", lambda p: p.write_bytes(b"not numpy"), tsv.ArgumentError, "{path}: not a readable .npy file"),
        ("w.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), tsv.ArgumentError,
         "{path}: not a readable .npy file"),
        ("w.csv", lambda p: p.write_text("1,2,x\n"), tsv.ArgumentError, "{path}: not a readable .csv file"),
        ("w.npz", lambda p: np.savez(p, windows=np.zeros((2, 2, 50))), tsv.ArgumentError,
         "{path}: an .npz file needs an array named 'X'"),
        ("w.npy", lambda p: np.save(p, np.array([["a"] * 100])), tsv.ArgumentError,
         "{path}: the windows have dtype <U1; expected numbers"),
        ("w.csv", lambda p: np.savetxt(p, np.zeros((3, 104)), delimiter=","), tsv.ShapeError,
         "{path}: a row has 104 values; each row must hold one window of 2 channels x 50 steps = 100 values"),
        ("w.npy", lambda p: np.save(p, np.zeros((4, 3, 50, 1), np.float32)), tsv.ShapeError,
         "{path}: windows of shape (3, 50, 1); the model expects (2, 50) per window"),
    ],
    ids=["missing", "folder", "suffix", "not-npy", "pickled", "csv-text", "npz-without-X", "strings",
         "row-length", "rank"],
)
def test_refusals_name_the_file(tmp_path: Path, paper: tsv.Model, name: str, write, exc, message: str) -> None:
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(exc) as info:
        io.read_windows(paper, path)
    assert str(info.value).startswith(message.format(path=path)), str(info.value)
