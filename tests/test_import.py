"""`import tsviz_native` from the source folder (where a user is after `pip install .`): the
checkout's tsviz_native/ has no compiled engine and shadows the installed package, so the import
fails with one line that says what to do (numpy's convention), never a bare
ModuleNotFoundError of tsviz_native._native."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_import_from_the_checkout_says_what_to_do() -> None:
    from importlib.machinery import EXTENSION_SUFFIXES

    if any((ROOT / "tsviz_native" / f"_native{s}").exists() for s in EXTENSION_SUFFIXES):  # built in place
        assert run("import tsviz_native", ROOT).returncode == 0
        return
    r = run("import tsviz_native", ROOT)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tsviz_native is being imported from its source folder (")
    assert "run Python outside the source folder to use the installed package, or install in place with: pip install -e ." in last
    assert "ModuleNotFoundError" not in r.stderr


def test_import_elsewhere_works(tmp_path: Path) -> None:
    r = run("import tsviz_native as t; print(t.ModelError.__mro__[2].__name__)", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ValueError"
