"""External tensor data (a model saved as model.onnx + model.onnx.data, as PyTorch's dynamo
exporter does): every field of the entry is validated with a named error, and pruning such a
model works from any working directory and writes a self-contained model."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

import tsviz_native as tsv
from conftest import model_path, ort_run, real_windows


def save_external(folder: Path, name: str = "paper_net_op17", location: str = "m.onnx.data") -> Path:
    model = onnx.load(model_path(name))
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, folder / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return folder / "m.onnx"


def with_entry(path: Path, **fields: str | None) -> Path:
    """Rewrites one field of every external-data entry (None removes it)."""
    model = onnx.load(path, load_external_data=False)
    for t in model.graph.initializer:
        entries = {e.key: e.value for e in t.external_data}
        entries.update(fields)
        del t.external_data[:]
        for k, v in entries.items():
            if v is not None:
                e = t.external_data.add()
                e.key, e.value = k, v
    onnx.save_model(model, path)
    return path


def refused(path: Path, pattern: str) -> None:
    with pytest.raises(tsv.ModelError, match=r"^m\.onnx: tensor '[^']+': " + pattern):
        tsv.load(path)


@pytest.mark.parametrize(
    "location, pattern",
    [
        ("", "its data is external, but the entry names no location"),
        (None, "its data is external, but the entry names no location"),
        ("/etc/passwd", re.escape("external data location '/etc/passwd' is an absolute path")),
        ("../m.onnx.data", re.escape("external data location '../m.onnx.data' contains '..'")),
        ("sub/../../m.onnx.data", re.escape("external data location 'sub/../../m.onnx.data' contains '..'")),
        (".", re.escape("external data location '.' names a folder, not a file")),
        ("sub/", re.escape("external data location 'sub/' names a folder, not a file")),
        ("sub", re.escape("external data location 'sub' is not a regular file")),
        ("a\\..\\m.onnx.data", re.escape("external data location 'a\\..\\m.onnx.data' contains a backslash")),
        ("missing.bin", re.escape("cannot open external data file 'missing.bin': no such file")),
    ],
    ids=["empty", "absent", "absolute", "dotdot", "dotdot_nested", "dot", "folder_slash", "folder", "backslash", "missing"],
)
def test_bad_location(tmp_path: Path, location: str | None, pattern: str) -> None:
    path = save_external(tmp_path)
    (tmp_path / "sub").mkdir()
    refused(with_entry(path, location=location), pattern)


def test_link_leaving_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    path = save_external(tmp_path / "model")
    outside.mkdir()
    os.replace(tmp_path / "model" / "m.onnx.data", outside / "m.onnx.data")
    os.symlink(outside / "m.onnx.data", tmp_path / "model" / "m.onnx.data")
    refused(path, re.escape("external data file 'm.onnx.data' lies outside the model's folder (it links to ")
            + ".*elsewhere/m.onnx.data\\)")
    # A link that stays inside the folder is followed.
    os.replace(outside / "m.onnx.data", tmp_path / "model" / "real.data")
    os.remove(tmp_path / "model" / "m.onnx.data")
    os.symlink("real.data", tmp_path / "model" / "m.onnx.data")
    assert tsv.load(path).layers


@pytest.mark.parametrize(
    "fields, pattern",
    [
        ({"offset": "-4"}, re.escape("external data offset '-4' is not a decimal byte count")),
        ({"offset": "0x10"}, re.escape("external data offset '0x10' is not a decimal byte count")),
        ({"length": "12abc"}, re.escape("external data length '12abc' is not a decimal byte count")),
        ({"length": " 64"}, re.escape("external data length ' 64' is not a decimal byte count")),
        ({"length": "99999999999999999999"}, re.escape("external data length '99999999999999999999' is not a decimal")),
        ({"offset": "1000000000"}, re.escape("external data offset 1000000000 lies past the end of 'm.onnx.data'")),
        ({"length": "1000000000"}, re.escape("external data range runs past the end of 'm.onnx.data' (offset ")),
        ({"offset": "0", "length": "4"}, "raw data of 4 bytes does not fit shape"),
        ({"colour": "blue"}, re.escape("external data key 'colour' is not defined by ONNX")),
    ],
    ids=["offset_negative", "offset_hex", "length_garbage", "length_space", "length_overflow", "offset_past_end",
         "range_past_end", "length_short", "unknown_key"],
)
def test_bad_offset_length_and_keys(tmp_path: Path, fields: dict, pattern: str) -> None:
    refused(with_entry(save_external(tmp_path), **fields), pattern)


def test_location_in_a_subfolder_loads(tmp_path: Path) -> None:
    path = save_external(tmp_path)
    (tmp_path / "weights").mkdir()
    os.replace(tmp_path / "m.onnx.data", tmp_path / "weights" / "all.bin")
    with_entry(path, location="weights/all.bin")
    x = real_windows((2, 50), "NCT", 3)
    np.testing.assert_array_equal(tsv.load(path).predict(x), tsv.load(model_path("paper_net_op17")).predict(x))


def test_prune_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Used to fail with a raw onnx.checker traceback unless the working directory was the
    model's folder; the pruned model is self-contained, wherever it is saved."""
    path = save_external(tmp_path / "models", name="paper_net_dynamo")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    model = tsv.load(path)
    X = real_windows((2, 50), "NCT", 32)
    stats = tsv.analyze_dataset(model, X, progress=False)
    result = tsv.prune(model, stats, fraction=0.25)
    proto = onnx.load_from_string(result.onnx_bytes)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    onnx.checker.check_model(proto, full_check=True)
    out = tmp_path / "elsewhere" / "pruned.onnx"
    out.parent.mkdir()
    result.save(str(out))
    pruned = tsv.load(out)
    assert result.n_parameters_after < result.n_parameters_before
    np.testing.assert_allclose(pruned.predict(X), ort_run(out.read_bytes(), X).reshape(len(X), -1), rtol=1e-5, atol=1e-5)


def test_cli_prune_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tsviz_native.cli import main

    path = save_external(tmp_path / "models")
    X = real_windows((2, 50), "NCT", 32)
    y = tsv.load(model_path("paper_net_op17")).predict(X)[:, 0]
    np.savez(tmp_path / "data.npz", X=X, y=y)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["prune", str(path), str(tmp_path / "data.npz"), "--fraction", "0.25", "--out", "p.onnx", "--quiet"]) == 0
    assert tsv.load(work / "p.onnx").n_parameters < tsv.load(path).n_parameters
