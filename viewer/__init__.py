"""The TSViz viewer (vispy): the paper's four levels of abstraction.

``tsviz view`` opens it, ``tsviz render`` renders one view to a PNG. Plain Python and numpy:
the state (:mod:`.state`), the explanation of one sample (:mod:`.frame`), the geometry
(:mod:`.geometry`, built by :mod:`.scene` with one module per level: :mod:`.level1`,
:mod:`.level2`, :mod:`.level3`; shared panels in :mod:`.panels`, colours in :mod:`.palette`).
Only :mod:`.app` imports vispy, after :func:`.backend.use` chose a backend. Importing this
package imports no vispy.
"""

from .state import SHORTCUTS, Highlight, Variant, ViewerState

__all__ = ["SHORTCUTS", "Highlight", "Variant", "ViewerState", "open_viewer"]


def open_viewer(model, X, truth=None, *, headless: bool = False, **kw):
    """A :class:`tsviz_native.viewer.app.Viewer` on ``model`` and windows ``X``.

    ``headless=True`` renders offscreen (``viewer.render()`` gives the RGBA image) and explains
    at once instead of in a worker thread.
    """
    from . import backend

    backend.use(headless=headless)
    from .app import Viewer

    kw.setdefault("show", not headless)
    kw.setdefault("threaded", not headless)
    return Viewer(model, X, truth, **kw)
