"""Chooses vispy's backend before anything imports ``vispy.scene`` (vispy needs that order).

Headless: OSMesa (Debian's ``libosmesa6`` ships only ``libOSMesa.so.8``, hence
``OSMESA_LIBRARY``), then EGL surfaceless. A window: glfw. ``TSVIZ_GL_BACKEND`` overrides both.
"""

from __future__ import annotations

import os

from tsviz_native._native import TSVizError

_chosen: str | None = None


class BackendError(TSVizError):
    """No OpenGL backend works here: a TSViz error (exit status 2 from the CLI, one line)."""


def _missing_vispy() -> BackendError:
    return BackendError("the viewer needs vispy: pip install 'tsviz-native[viewer]' "
                        "(vispy, glfw; headless rendering also needs OSMesa or EGL, e.g. "
                        "apt-get install libosmesa6)")


def use(headless: bool) -> str:
    """Selects and returns the backend; a second call keeps the first choice."""
    global _chosen
    if _chosen is not None:
        return _chosen
    try:
        import vispy
    except ImportError:
        raise _missing_vispy() from None
    wanted = os.environ.get("TSVIZ_GL_BACKEND")
    order = [wanted] if wanted else (["osmesa", "egl"] if headless else ["glfw", "pyqt6", "pyside6"])
    errors = []
    for name in order:
        if name == "osmesa":
            os.environ.setdefault("OSMESA_LIBRARY", "libOSMesa.so.8")
        elif name == "egl" and not os.environ.get("DISPLAY"):
            os.environ.setdefault("EGL_PLATFORM", "surfaceless")
        try:
            vispy.use(app=name)
            from vispy import app

            app.use_app(name)
        except Exception as e:  # each backend fails in its own way (OSError, RuntimeError)
            errors.append(f"{name}: {e}")
            continue
        _chosen = name
        return name
    raise BackendError("no vispy backend works here (" + "; ".join(errors) + "). "
                       + ("Install libosmesa6 (or Mesa EGL)." if headless else
                          "A window needs a display and glfw (pip install glfw); "
                          "use `tsviz render` to render headless."))
