"""`tsviz view` in a real window: Xvfb, the glfw backend, keys and a click by xdotool, and
screenshots of the root window (imagemagick). Its own processes: the GL choice is per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from viewer_conftest import need, unavailable

TOOLS = ("Xvfb", "xdotool", "import")


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture()
def display():
    if any(shutil.which(t) is None for t in TOOLS):
        unavailable(f"needs {', '.join(TOOLS)} (apt: xvfb xdotool imagemagick)")
    for module in ("vispy", "glfw", "PIL"):
        need(module)
    # Xvfb picks a free display number itself and writes it to a pipe (-displayfd), so two test
    # runs on one machine never share or fight over a display.
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number.isdigit():
        proc.terminate()
        raise RuntimeError(f"Xvfb did not start (exit status {proc.wait(timeout=10)})")
    n = int(number)
    env = dict(os.environ, DISPLAY=f":{n}")
    # The number is written once the server listens; wait until it answers (up to a minute on a
    # busy machine), and say so when it never does rather than fail later in the viewer.
    deadline = time.monotonic() + 60
    while subprocess.run(["xdotool", "getdisplaygeometry"], env=env,
                         capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"Xvfb :{n} did not answer within 60 s")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=10)


def test_view_opens_a_window_that_answers_keys_and_clicks(display, tmp_path):
    env = dict(os.environ, DISPLAY=display, TSVIZ_GL_BACKEND="glfw")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)

    def shot(name: str, differs_from: np.ndarray | None = None, pixels: int = 2000) -> np.ndarray:
        """A screenshot once the window shows something (new): the worker explains off the GUI
        thread and the window redraws when its timer swaps the result in. Waits up to 30 s
        (the first explanation also compiles the clustering kernels)."""
        path = tmp_path / name

        def ready(img: np.ndarray) -> bool:
            if differs_from is None:
                return (img > 200).any(axis=2).sum() > 500  # drawn, not just the background
            return np.abs(img.astype(int) - differs_from).max(axis=2).astype(bool).sum() > pixels

        img = None
        for _ in range(120):
            time.sleep(0.25)
            assert run("import", "-window", "root", str(path)).returncode == 0
            img = _png(path)
            if ready(img):
                time.sleep(0.5)  # let a redraw in progress finish
                assert run("import", "-window", "root", str(path)).returncode == 0
                return _png(path)
        return img

    viewer = subprocess.Popen(
        [sys.executable, "-m", "tsviz_native.cli", "view", "forecaster", "--index", "100",
         "--size", "1000x640"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).parent)  # run the installed package, not the checkout's sources
    try:
        win = ""
        for _ in range(200):
            win = run("xdotool", "search", "--name", "TSViz").stdout.split()
            if win or viewer.poll() is not None:
                break
            time.sleep(0.1)
        assert win, "no window: " + (viewer.communicate()[1] if viewer.poll() is not None else "")
        win = win[0]
        level1 = shot("level1.png")
        assert level1.std() > 5 and (level1 > 200).any(axis=2).sum() > 500  # not blank

        run("xdotool", "mousemove", "500", "300")
        run("xdotool", "key", "--window", win, "2")
        level2 = shot("level2.png", level1)
        assert np.abs(level2.astype(int) - level1).max(axis=2).astype(bool).sum() > 2000
        r, g, b = (level2[..., i].astype(int) for i in range(3))
        assert ((r > 40) & (r > 3 * g) & (r > 3 * b)).sum() > 50  # red importance bars

        run("xdotool", "key", "--window", win, "3")
        run("xdotool", "key", "--window", win, "Right")
        level3 = shot("level3.png", level2)
        assert np.abs(level3.astype(int) - level2).max(axis=2).astype(bool).sum() > 2000
        run("xdotool", "mousemove", "600", "320", "click", "1")
        run("xdotool", "key", "--window", win, "h")
        helped = shot("help.png", level3, 500)
        assert np.abs(helped.astype(int) - level3).max(axis=2).astype(bool).sum() > 500

        run("xdotool", "key", "--window", win, "q")
        out, err = viewer.communicate(timeout=20)
        assert viewer.returncode == 0, err
        assert "windows" in out
    finally:
        if viewer.poll() is None:
            viewer.kill()
        viewer.communicate()  # closes the pipes
