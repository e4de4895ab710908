"""The README's Python examples run, and its two set-up commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The examples run in order, as one session would, in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = python_blocks()
    assert blocks
    for index, block in enumerate(blocks):
        exec(compile(block, f"README.md[python {index}]", "exec"), namespace)
    assert (tmp_path / "pruned.onnx").stat().st_size > 1000


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    section = README.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    assert len(commands) == 2
    assert "pytest" in commands[1]
    assert commands[1].strip() in (ROOT / ".ci" / "run").read_text()


def test_user_facing_text_points_to_the_repositorys_own_docs() -> None:
    """Users have the repository, not the project's notes: no SPEC.md, no ../shared, no one
    machine's paths; what the docstrings cite exists."""
    files = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "tsviz_native").rglob("*.py")), *sorted((ROOT / "tsviz_native").rglob("*.md"))]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for bad in ("SPEC.md", "../shared", "/work/"):
            assert bad not in text, f"{path.relative_to(ROOT)} mentions {bad}"
    definitions = (ROOT / "docs" / "definitions.md").read_text()
    for section in ("## Importance", "## Saliency", "## Percentile filter", "## Trace", "## Dead filters",
                    "## Filter clustering", "## Pruning ranks", "## Scales and the model record", "## Data files",
                    "## Influence on the loss", "## Signed input gradient", "## Adversarial attacks",
                    "## Inverse optimisation", "## Faithfulness"):
        assert section in definitions
    assert "1 if that value is positive" in definitions and "channel-major" in definitions


def test_readme_writes_the_cpp_examples_window(tmp_path: Path) -> None:
    import subprocess
    import sys

    import numpy as np

    line = next(l for l in README.splitlines() if "window.csv" in l and l.startswith("python3 -c"))
    code = line.split('"', 1)[1].rsplit('"', 1)[0]
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    window = np.loadtxt(tmp_path / "window.csv", delimiter=",")
    assert window.shape == (2, 50)  # C rows of T values: the layout tsviz-explain reads
