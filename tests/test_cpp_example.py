"""The C++ library as another project uses it.

Builds the engine alone with CMake (no Python, no pybind11), installs it to a temporary prefix,
builds ``cpp/examples`` against that prefix with ``find_package(tsviz)``, and checks that
``tsviz-explain`` reports the numbers the Python API computes, on the shipped models and real
windows of the B5M Internet traffic series. The README's C++ sample is the file that is built.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "models"
TOL = 1e-6


def _run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(
            f"command failed with exit status {proc.returncode}: {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


class CppBuild:
    def __init__(self, prefix: Path, examples: Path, lib_build: Path, seconds: float) -> None:
        self.prefix = prefix
        self.examples = examples
        self.lib_build = lib_build
        self.seconds = seconds

    def exe(self, name: str) -> Path:
        return self.examples / name


@pytest.fixture(scope="module")
def cpp(tmp_path_factory: pytest.TempPathFactory) -> CppBuild:
    """The library configured, built and installed, and the examples built against it."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail(
            "cmake is not on PATH: these tests build the C++ library and its examples. "
            "Install it with `python3 -m pip install cmake ninja` (both are build requirements)."
        )
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    jobs = os.environ.get("TSVIZ_TEST_JOBS", "2")
    base = tmp_path_factory.mktemp("cpp")
    lib_build, prefix, examples = base / "lib", base / "prefix", base / "examples"
    env = {k: v for k, v in os.environ.items() if k not in ("CMAKE_PREFIX_PATH", "tsviz_DIR")}
    start = time.perf_counter()
    _run([cmake, "-S", ROOT, "-B", lib_build, *generator, "-DCMAKE_BUILD_TYPE=Release",
          "-DTSVIZ_BUILD_TESTS=OFF"], env=env)
    _run([cmake, "--build", lib_build, "-j", jobs], env=env)
    _run([cmake, "--install", lib_build, "--prefix", prefix], env=env)
    _run([cmake, "-S", ROOT / "cpp" / "examples", "-B", examples, *generator,
          "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}"], env=env)
    _run([cmake, "--build", examples, "-j", jobs], env=env)
    return CppBuild(prefix, examples, lib_build, time.perf_counter() - start)


def test_install_has_headers_library_and_package_only(cpp: CppBuild) -> None:
    files = sorted(p.relative_to(cpp.prefix).as_posix() for p in cpp.prefix.rglob("*") if p.is_file())
    headers = sorted(p.name for p in (ROOT / "cpp" / "include" / "tsviz").glob("*.hpp"))
    assert [f for f in files if f.startswith("include/")] == [f"include/tsviz/{h}" for h in headers]
    assert any(re.fullmatch(r"lib(64)?/libtsviz\.a", f) for f in files), files
    for name in ("tsvizConfig.cmake", "tsvizConfigVersion.cmake", "tsvizTargets.cmake"):
        assert any(re.fullmatch(rf"lib(64)?/cmake/tsviz/{name}", f) for f in files), (name, files)
    # Nothing else: no test programs, no Python module.
    others = [f for f in files if not re.match(r"(include/tsviz/|lib(64)?/libtsviz\.a$|lib(64)?/cmake/tsviz/)", f)]
    assert others == []
    # The public headers include only the standard library and each other.
    for h in headers:
        for inc in re.findall(r'#include\s+[<"]([^>"]+)[>"]', (ROOT / "cpp" / "include" / "tsviz" / h).read_text()):
            assert inc.startswith("tsviz/") or "/" not in inc and "." not in inc, (h, inc)
    # Nothing of Python was looked for.
    cache = (cpp.lib_build / "CMakeCache.txt").read_text()
    assert "pybind11_DIR" not in cache and "Python_EXECUTABLE" not in cache


def _b5m_window(start: int, length: int) -> np.ndarray:
    """The README's window: the standardised B5M signal and its first difference, (2, T)."""
    traffic = tsv.datasets.internet_traffic("B5M").values
    w = ((traffic - traffic.mean()) / traffic.std())[start : start + length]
    return np.stack([w, np.diff(w, prepend=w[0])]).astype(np.float32)


def _write_csv(path: Path, x: np.ndarray) -> None:
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    path.write_text("".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


CASES = [
    ("shipped-forecaster", "NCT", 0),  # the demo's model on one of its own test windows
    ("paper_net_op17", "NCT", 1000),
    ("paper_net_op17", "NCT", 7000),
    ("keras_paper_net_op17", "NTC", 1000),  # channels-last: T rows of C values
    ("keras_paper_net_op17", "NTC", 7000),
    ("fcn_op17", "NCT", 12000),  # free length, two outputs behind a Softmax
]


@pytest.mark.parametrize(("name", "layout", "start"), CASES)
def test_tsviz_explain_matches_python(cpp: CppBuild, tmp_path: Path, name: str, layout: str, start: int) -> None:
    from tsviz_native import models

    path = models.path("forecaster") if name == "shipped-forecaster" else MODELS / f"{name}.onnx"
    model = tsv.load(path)
    if name == "shipped-forecaster":
        x = models.forecaster_windows("test")[0][123]
    elif name == "fcn_op17":
        x = _b5m_window(start, 150)[:1]  # one channel, T = 150
    else:
        x = _b5m_window(start, 50)
    if layout == "NTC":
        x = np.ascontiguousarray(x.T)
    csv = tmp_path / "window.csv"
    _write_csv(csv, x)
    # The CSV holds float32 exactly (9 significant digits round-trip).
    assert np.array_equal(np.loadtxt(csv, delimiter=",", dtype=np.float32, ndmin=2), x)

    proc = _run([cpp.exe("tsviz-explain"), path, csv])
    got = json.loads(proc.stdout)
    ex = model.explain(x)

    assert got["model"] == str(path)
    assert got["input_shape"] == list(x.shape)
    assert len(got["prediction"]) == model.n_outputs
    assert all(_close(a, float(b)) for a, b in zip(got["prediction"], ex.output[0])), (got["prediction"], ex.output)
    assert got["target"] == int(ex.target[0])
    assert [layer["name"] for layer in got["layers"]] == list(ex.layer_names)
    for layer in got["layers"]:
        lname = layer["name"]
        imp, raw = ex.importance[lname][0], ex.importance_raw[lname][0]
        assert layer["op"] == model.layer(lname).op
        assert layer["n_filters"] == len(imp) == model.layer(lname).n_filters
        top = layer["top_filters"]
        assert len(top) == min(5, len(imp))
        filters = [t["filter"] for t in top]
        assert len(set(filters)) == len(filters)
        for t in top:
            assert _close(t["importance"], float(imp[t["filter"]])), (lname, t, imp[t["filter"]])
            assert _close(t["importance_raw"], float(raw[t["filter"]])), (lname, t, raw[t["filter"]])
        # They are the most important filters, in order.
        reported = [t["importance"] for t in top]
        assert reported == sorted(reported, reverse=True)
        rest = np.delete(imp, filters)
        assert rest.size == 0 or rest.max() <= reported[-1] + TOL
        if len(imp) > 1 and raw.max() > raw.min():
            assert _close(reported[0], 1.0)


def test_tsviz_explain_errors_exit_2_with_one_line(cpp: CppBuild, tmp_path: Path) -> None:
    exe, paper = cpp.exe("tsviz-explain"), MODELS / "paper_net_op17.onnx"
    good = tmp_path / "good.csv"
    _write_csv(good, _b5m_window(1000, 50))
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,x,6\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n")
    cases = [
        ([MODELS / "no_such.onnx", good], "no_such.onnx: no such file"),
        ([MODELS / "keras_paper_net_op17.onnx", good], "the model expects (50, 2)"),
        ([paper, bad], "bad.csv:2: field 2 'x' is not a number"),
        ([paper, ragged], "ragged.csv:2: 2 values"),
        ([paper, tmp_path / "missing.csv"], "missing.csv: cannot be opened"),
        ([paper], "usage"),
    ]
    for args, message in cases:
        proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert proc.stdout == ""
        assert message in proc.stderr and proc.stderr.count("\n") == 1, (args, proc.stderr)


def _readme_cpp_sample() -> str:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Use from C++\n" in readme
    section = readme.split("\n## Use from C++\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```cpp\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the 'Use from C++' section has exactly one ```cpp block"
    return blocks[0]


def test_readme_cpp_sample_is_the_built_file(cpp: CppBuild) -> None:
    assert _readme_cpp_sample() == (ROOT / "cpp" / "examples" / "readme_sample.cpp").read_text()


def test_readme_cpp_sample_runs(cpp: CppBuild) -> None:
    proc = _run([cpp.exe("readme_sample")], cwd=ROOT)
    model = tsv.load(MODELS / "paper_net_op17.onnx")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("prediction ")
    assert [line.split()[0] for line in lines[1:]] == [layer.name for layer in model.layers]
