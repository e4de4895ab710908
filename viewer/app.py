"""The vispy layer: one canvas, one camera per level, a few batched visuals, a worker thread.

Import this module only after :func:`tsviz_native.viewer.backend.use` chose a backend.
All the geometry comes from :mod:`.scene` (numpy, one module per level); this module uploads it
and handles events. The explanation of a sample (:class:`.frame.Frame`) is computed off the GUI
thread.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np
from vispy import app as vapp
from vispy import scene
from vispy.gloo import IndexBuffer, VertexBuffer
from vispy.scene import visuals
from vispy.visuals import Visual
from vispy.visuals.transforms import STTransform

from tsviz_native._native import ArgumentError, TSVizError

from .frame import Frame, ModelInfo, modified_input
from .geometry import Geometry, draw_connect, draw_text, pick
from .palette import BACKGROUND, TEXT_COLOR
from .panels import fmt, selected_filter
from .scene import build
from .state import SHORTCUTS, Highlight, Variant, ViewerState

LEVEL_NAMES = {1: "network", 2: "filters", 3: "layer", 4: "clusters"}
#: The keys that change what is explained or the input shown, and the Viewer's method of each.
ACTIONS = {"L": "toggle_wrt", "A": "attack", "I": "inverse", "O": "original"}
LABEL_FONT = 8  # points: scene labels
HUD_FONT = 9  # points: status line and help
#: Width of one character, in ems, an upper estimate for the labels' font (DejaVu Sans averages
#: about 0.52 em): the camera leaves this much room for each label.
CHAR_EM = 0.6
#: Canvas pixels kept free: at the sides, at the top, and at the bottom for the status lines
#: and the slider.
MARGIN, HUD_HEIGHT = 8, 64
HELP_BACKGROUND = (0.12, 0.12, 0.16, 0.94)


class _TrianglesVisual(Visual):
    """Triangles with a colour per vertex, as vispy's Mesh draws them ('translucent', depth
    test, no culling), whose buffers are refilled in place: Mesh builds a new colour function
    on every set_data, so each sample switch relinked its shader, and it un-indexes the faces
    on the CPU first."""

    _VERTEX = """
    varying vec4 v_color;
    void main() {
        v_color = $color;
        gl_Position = $transform(vec4($position, 1.0));
    }
    """
    _FRAGMENT = """
    varying vec4 v_color;
    void main() {
        gl_FragColor = v_color;
    }
    """

    def __init__(self) -> None:
        super().__init__(vcode=self._VERTEX, fcode=self._FRAGMENT)
        self.set_gl_state("translucent", depth_test=True, cull_face=False)
        self._draw_mode = "triangles"
        self._pos = VertexBuffer(np.zeros((3, 3), np.float32))
        self._col = VertexBuffer(np.zeros((3, 4), np.float32))
        self._index_buffer = IndexBuffer(np.arange(3, dtype=np.uint32))
        self.shared_program.vert["position"] = self._pos
        self.shared_program.vert["color"] = self._col
        self._bounds: list[tuple[float, float]] | None = None
        self.freeze()

    def set_data(self, vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray) -> None:
        v = np.ascontiguousarray(vertices, np.float32)
        self._pos.set_data(v)
        self._col.set_data(np.ascontiguousarray(vertex_colors, np.float32))
        self._index_buffer.set_data(np.ascontiguousarray(faces, np.uint32).ravel())
        self._bounds = [(float(v[:, k].min()), float(v[:, k].max())) for k in range(3)] if len(v) else None
        self.update()

    def _prepare_transforms(self, view: Any) -> None:
        view.view_program.vert["transform"] = view.transforms.get_transform()

    def _prepare_draw(self, view: Any) -> None:
        pass

    def _compute_bounds(self, axis: int, view: Any) -> Any:
        return None if self._bounds is None else self._bounds[axis]


_Triangles = scene.visuals.create_visual_node(_TrianglesVisual)


def _layout_function() -> Any:
    """vispy's glyph layout of one string, when it has the signature this module knows (with
    a line height: vispy 0.17; 0.15 has none); None otherwise, and the labels are laid out by
    vispy's Text as it is."""
    try:
        import inspect

        from vispy.visuals.text import text as vtext

        fn = vtext._text_to_vbo
        params = list(inspect.signature(fn).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    want = ["text", "font", "anchor_x", "anchor_y", "lowres_size", "line_height"]
    return fn if params == want else None


_LAYOUT = _layout_function()
#: Characters vispy's layout treats as line breaks, tabs and the like.
_ESCAPES = frozenset(chr(c) for c in (7, 8, 9, 10, 11, 12, 13))
#: The glyphs vispy's layout measures for every string (its ascender and descender).
_PROBE = "ÅÉÑŐjgpqy"
_VERTEX_TYPE = np.dtype([("a_position", np.float32, 2), ("a_texcoord", np.float32, 2)])


def _layout(text: str, font: Any, anchor_x: str, anchor_y: str, lowres_size: float,
            line_height: float) -> np.ndarray:
    """vispy's layout of one string (its ``_text_to_vbo``); see :func:`_layout_many`."""
    return _layout_many([text], font, anchor_x, anchor_y, lowres_size, line_height)[0]


def _layout_many(texts: list[str], font: Any, anchor_x: str, anchor_y: str, lowres_size: float,
                 line_height: float) -> list[np.ndarray]:
    """vispy's layout of each string (its ``_text_to_vbo``), with the same float operations
    in numpy, all strings at once, instead of a Python step per character: a status line of
    240 characters took about a millisecond, twenty short labels as much. A string with a
    glyph not yet in the atlas, or a line break or tab, goes to vispy's own (it renders the
    new glyph and handles the breaks)."""
    glyphs = font._glyphs
    out: list[Any] = [None] * len(texts)
    fast = []
    probe_ok = all(c in glyphs for c in _PROBE)
    for i, t in enumerate(texts):
        if probe_ok and not _ESCAPES.intersection(t) and all(c in glyphs for c in t):
            fast.append(i)
        else:
            out[i] = _LAYOUT(t, font, anchor_x, anchor_y, lowres_size, line_height)
    if not fast:
        return out
    ratio, slop = 1.0 / font.ratio, font.slop
    ascender = descender = 0
    for char in _PROBE:
        glyph = glyphs[char]
        y0 = glyph["offset"][1] * ratio + slop
        y1 = y0 - glyph["size"][1]
        ascender = max(ascender, y0 - slop)
        descender = min(descender, y1 + slop)
    ts = [texts[i] for i in fast]
    lens = np.array([len(t) for t in ts], np.int64)
    starts = np.r_[0, np.cumsum(lens)[:-1]].astype(np.int64)
    n = int(lens.sum())
    vertices = np.zeros(n * 4, dtype=_VERTEX_TYPE)
    asc = np.full(len(ts), float(ascender))
    desc = np.full(len(ts), float(descender))
    width = np.zeros(len(ts))
    if n:
        g = [glyphs[c] for t in ts for c in t]
        kerning = np.array([k for t in ts for k in ([0.0] + [glyphs[c]["kerning"].get(p, 0.0)
                                                             for c, p in zip(t[1:], t)] if t else [])],
                           np.float64) * ratio
        off = np.array([gl["offset"] for gl in g], np.float64)
        size = np.array([gl["size"] for gl in g], np.float64)
        tex = np.array([gl["texcoords"] for gl in g], np.float64)
        advance = np.array([gl["advance"] for gl in g], np.float64)
        move = advance * ratio + kerning
        # one row per string, summed left to right as vispy's loop adds (cumsum along a row
        # is sequential): the pen position before each glyph, and the string's width
        row = np.repeat(np.arange(len(ts)), lens)
        col = np.arange(n) - starts[row]
        pen = np.zeros((len(ts), int(lens.max()) + 1))
        pen[:, 0] = -slop
        pen[row, col + 1] = move
        x_off = np.cumsum(pen, axis=1)[row, col]
        moves = np.zeros((len(ts), int(lens.max())))
        moves[row, col] = move
        full = lens > 0
        width[full] = np.cumsum(moves, axis=1)[full, lens[full] - 1]
        x0 = x_off + off[:, 0] * ratio + kerning
        y0 = off[:, 1] * ratio + slop
        x1, y1 = x0 + size[:, 0], y0 - size[:, 1]
        pos = vertices["a_position"].reshape(n, 4, 2)
        pos[:, :, 0] = np.stack([x0, x0, x1, x1], axis=1)
        pos[:, :, 1] = np.stack([y0, y1, y1, y0], axis=1)
        uv = vertices["a_texcoord"].reshape(n, 4, 2)
        uv[:, :, 0] = tex[:, [0, 0, 2, 2]]
        uv[:, :, 1] = tex[:, [1, 3, 3, 1]]
        asc[full] = np.maximum(asc[full], np.maximum.reduceat(y0 - slop, starts[full]))
        desc[full] = np.minimum(desc[full], np.minimum.reduceat(y1 + slop, starts[full]))
    dy = np.zeros(len(ts))
    if anchor_y == "top":
        dy = -desc
    elif anchor_y in ("center", "middle"):
        dy = (-desc - asc) / 2
    elif anchor_y == "bottom":
        dy = -asc
    dx = np.zeros(len(ts))
    if anchor_x == "right":
        dx = -width
    elif anchor_x == "center":
        dx = -width / 2.0
    # as vispy's ``a_position += (dx, dy)`` (float32 + float64, rounded back), then ``/=``
    shift = np.repeat(np.stack([dx, dy], axis=1), 4 * lens, axis=0)
    vertices["a_position"] = vertices["a_position"] + shift
    vertices["a_position"] /= lowres_size
    for i, a, k in zip(fast, starts.tolist(), lens.tolist()):
        out[i] = vertices[4 * a : 4 * (a + k)]
    return out


class _Labels(visuals.Text):
    """vispy's Text, laying out each distinct string once. vispy lays out every string again
    whenever the list changes (a few tenths of a millisecond per string: a sample switch
    changes the title but keeps the layer labels), and makes new GL buffers each time; here
    the layouts are kept by string and the buffers refilled in place."""

    MAX_LAYOUTS = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._layouts: dict[tuple, np.ndarray] = {}
        self._vbo: Any = None
        self._ibo: Any = None
        super().__init__(*args, **kwargs)

    def _prepare_draw(self, view: Any) -> Any:
        if _LAYOUT is not None and self._vertices is None and len(self.text):
            texts = [self.text] if isinstance(self.text, str) else self.text
            font = self._font
            style = (id(font), self._anchors, font._lowres_size, self._line_height)
            if len(self._layouts) > self.MAX_LAYOUTS:
                self._layouts.clear()
            new = [t for t in dict.fromkeys(texts) if (t,) + style not in self._layouts]
            if new:  # laid out together; kept as plain (4 n, 4) float32 (cheap to join)
                for t, v in zip(new, _layout_many(new, font, *self._anchors, font._lowres_size,
                                                  self._line_height)):
                    self._layouts[(t,) + style] = v.view(np.float32).reshape(-1, 4)
            parts = [self._layouts[(t,) + style] for t in texts]
            data = np.concatenate(parts).view(_VERTEX_TYPE).reshape(-1)
            idx = (np.array([0, 1, 2, 0, 2, 3], np.uint32)
                   + np.arange(0, len(data), 4, dtype=np.uint32)[:, np.newaxis]).ravel()
            if self._vbo is None:
                self._vbo, self._ibo = VertexBuffer(data), IndexBuffer(idx)
            else:
                self._vbo.set_data(data)
                self._ibo.set_data(idx)
            self._vertices_data, self._vertices, self._index_buffer = data, self._vbo, self._ibo
            self.shared_program.bind(self._vertices)
            self._configure_gl_state()  # a new glyph's SDF rendering changes the GL state
        return super()._prepare_draw(view)


class _StackCamera(scene.TurntableCamera):
    """Turntable for level 2: the wheel scrolls filter stacks (the viewer handles it)."""

    def viewbox_mouse_event(self, event: Any) -> None:
        if event.type == "mouse_wheel":
            return
        super().viewbox_mouse_event(event)


class _Worker(threading.Thread):
    """Explains samples off the GUI thread; only the latest request is served."""

    def __init__(self, compute: Any) -> None:
        super().__init__(daemon=True, name="tsviz-viewer-worker")
        self.compute = compute
        self.requests: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.busy = threading.Event()

    def run(self) -> None:
        while True:
            job = self.requests.get()
            while True:  # skip requests overtaken by newer ones
                try:
                    job = self.requests.get_nowait()
                except queue.Empty:
                    break
            if job is None:
                return
            try:
                result = self.compute(*job)
            except Exception as e:  # shown on the status line, never kills the GUI
                result = e
            self.results.put((job, result))

    def submit(self, *job: Any) -> None:
        self.busy.set()
        self.requests.put(job)


class Viewer:
    """The TSViz viewer of one model and a data set of windows.

    Parameters
    ----------
    model : tsviz_native.Model
    X : windows ``(N, ...)`` in the model's layout.
    truth : optional ``(N,)`` targets, shown on the status line; with them the loss can be
        explained instead of the output (key ``L``).
    sample, level, layer, percentile, sort : the initial :class:`ViewerState`.
    size : canvas size in pixels. show : open a window (False renders offscreen).
    scaling : the model record's output scaling ``{"mean", "std"}`` (a forecaster): its
        forecast is drawn after the input and values are shown on the original scale.
    threaded : explain new samples in a worker thread (the window); False computes at once
        (``tsviz render``, tests).
    """

    def __init__(self, model: Any, X: np.ndarray, truth: Any = None, *, sample: int = 0,
                 level: int = 1, layer: str | None = None, percentile: float = 0.0,
                 sort: str = "descending", size: tuple[int, int] = (1400, 850),
                 show: bool = True, threaded: bool = True, title: str | None = None,
                 scaling: dict[str, float] | None = None) -> None:
        self.model = model
        self.info = ModelInfo.from_model(model, scaling)
        self.X = X
        self.truth = truth
        names = self.info.layer_names
        self.state = ViewerState(n_samples=len(X), layers=names, sample=sample, level=level,
                                 layer=layer or names[0], percentile=percentile, sort=sort,
                                 has_targets=truth is not None)
        self._title = title or f"TSViz: {self.info.name}"
        self.canvas = scene.SceneCanvas(size=size, show=False, bgcolor=BACKGROUND,
                                        keys=None, vsync=False, title=self._title)
        self.view = self.canvas.central_widget.add_view()
        self.view.border_width = 0
        self.cameras = {
            1: scene.TurntableCamera(fov=30, elevation=0, azimuth=0),
            2: _StackCamera(fov=0, elevation=22, azimuth=0),
            3: scene.PanZoomCamera(aspect=1),
            4: scene.PanZoomCamera(aspect=1),
        }
        self.mesh = _Triangles(parent=self.view.scene)
        self.line = visuals.Line(method="gl", width=1.5, parent=self.view.scene)
        self.markers = visuals.Markers(parent=self.view.scene)
        self.markers.set_data(np.zeros((1, 3), np.float32), size=1, edge_width=0)
        self.markers.visible = False
        self.markers.set_gl_state("translucent", depth_test=False)
        self.markers.order = 10
        self.text = _Labels("", color=TEXT_COLOR, font_size=LABEL_FONT, parent=self.view.scene)
        self.text.order = 11
        self.help_bg = visuals.Mesh(parent=self.canvas.scene)  # behind the help text
        self.help_bg.visible = False
        self.help_bg.order = 1
        self.hud = _Labels("", color=TEXT_COLOR, font_size=HUD_FONT, anchor_x="left",
                                anchor_y="bottom", parent=self.canvas.scene)
        self.hud.order = 2
        self.slider = visuals.Line(method="gl", width=3, color=(0.4, 0.4, 0.45, 1.0),
                                   parent=self.canvas.scene)
        # the slider's handle: one marker at the origin, moved by its transform (a Markers
        # set_data remakes its buffers and colours: half a millisecond a sample switch)
        self.handle = visuals.Markers(parent=self.canvas.scene)
        self.handle.set_data(np.zeros((1, 2), np.float32), face_color=(0.9, 0.9, 0.9, 1.0), size=11,
                             edge_width=0)
        self.handle.transform = STTransform()
        self.geometry: Geometry | None = None
        self._frames: dict[tuple, Frame] = {}  # by Frame.key: sample, wrt, variant
        self._inputs: dict[tuple, tuple[np.ndarray, str]] = {}  # (sample, variant) -> input, note
        self._frame: Frame | None = None
        self._pending = False
        self._error: str | None = None
        self._message: str | None = None  # a refused key, on the status line until the next key
        self._press: tuple[float, float] | None = None
        self._camera_level: int | None = None
        self._screen: np.ndarray | None = None
        self._threaded = threaded
        self._worker: _Worker | None = None
        # Explaining ahead: the direction of the last step through the windows, and the job
        # (key, cluster layers) the worker runs for the next window in it, if any
        self._step = 1
        self._ahead: tuple | None = None
        self._timer = None
        if threaded:
            self._worker = _Worker(self._compute)
            self._worker.start()
            self._timer = vapp.Timer(0.015, connect=self._poll, start=True)
        self.state.connect(self._on_state)
        ev = self.canvas.events
        ev.key_press.connect(self._on_key)
        ev.mouse_press.connect(self._on_press)
        ev.mouse_release.connect(self._on_release)
        ev.mouse_wheel.connect(self._on_wheel)
        ev.resize.connect(lambda e: self._update_hud())
        ev.draw.connect(lambda e: setattr(self, "_screen", None))
        self._request()
        if show:
            self.canvas.show()

    # ------------------------------------------------------------------ computing
    def _key(self) -> tuple:
        """What the state asks to be shown: (sample, wrt, variant), as :attr:`Frame.key`."""
        st = self.state
        return (st.sample, st.wrt, st.variant)

    def _compute(self, key: tuple, cluster_layers: tuple[str, ...]) -> Frame:
        """Runs in the worker (or at once when not threaded): the attacked or optimised input
        if asked, explain, then cluster if asked."""
        frame = self._frames.get(key)
        if frame is None:
            sample, wrt, variant = key
            truth = None if self.truth is None else self.truth[sample]
            x, note = None, ""
            if variant is not None:
                if (sample, variant) not in self._inputs:
                    self._inputs[(sample, variant)] = modified_input(self.model, self.X[sample], truth, variant)
                x, note = self._inputs[(sample, variant)]
            frame = Frame.compute(self.model, self.info, self.X, sample, truth, cluster_layers,
                                  wrt=wrt, x=x, variant=variant, note=note)
        else:
            frame.add_clusters(cluster_layers)
        return frame

    def _needs_clusters(self) -> tuple[str, ...]:
        if self.state.level != 4:
            return ()
        layer = self.state.layer
        L = self.info.layers[self.info.layer_names.index(layer)]
        return (layer,) if L.op != "dense" else ()

    def _request(self) -> None:
        key, cl = self._key(), self._needs_clusters()
        frame = self._frames.get(key)
        if frame is not None and all(c in frame.clusters for c in cl):
            self._swap(frame)
            return
        if self._worker is None:
            self._swap(self._compute(key, cl))
        elif (key, cl) == self._ahead:  # explained ahead already: _poll swaps it in when done
            self._pending = True
            self._update_hud()
        else:
            self._pending = True
            self._ahead = None  # a queued job ahead is overtaken (the worker serves the latest)
            self._worker.submit(key, cl)
            self._update_hud()

    def _explain_ahead(self) -> None:
        """With the worker idle, explains the next window in the direction of the last step and
        keeps it in the cache: stepping through the windows then finds each one explained (no
        wait for the engine, nor for the next poll). Not for an attacked or optimised input."""
        st = self.state
        if self._worker is None or self._pending or self._ahead is not None or st.variant is not None:
            return
        sample = st.sample + self._step
        if not 0 <= sample < st.n_samples:
            return
        key, cl = (sample, st.wrt, None), self._needs_clusters()
        frame = self._frames.get(key)
        if frame is not None and all(c in frame.clusters for c in cl):
            return
        self._ahead = (key, cl)
        self._worker.submit(key, cl)

    def _poll(self, event: Any = None) -> bool:
        """GUI thread: takes the worker's latest result, if any, and swaps it in."""
        got = False
        if self._worker is None:
            return got
        while True:
            try:
                job, result = self._worker.results.get_nowait()
            except queue.Empty:
                break
            got = True
            if job == self._ahead:
                self._ahead = None
                if job[0] != self._key():  # explained ahead: kept, or its error said when asked
                    if not isinstance(result, Exception):
                        self._frames[result.key] = result
                    continue
            if isinstance(result, Exception):
                self._error = f"{type(result).__name__}: {result}"
                self._pending = False
                self._update_hud()
                continue
            self._frames[result.key] = result
            if job[0] == self._key():
                self._pending = False
                self._error = None
                self._swap(result)
        if self._worker.requests.empty() and self._worker.results.empty() and not self._pending:
            self._worker.busy.clear()
        if not got:  # an idle tick (the frame swapped in has been drawn): look ahead
            self._explain_ahead()
        return got

    def wait(self, timeout: float = 30.0) -> None:
        """Blocks until the current sample is explained and shown (tests, benchmarks)."""
        end = time.perf_counter() + timeout
        while self._pending and time.perf_counter() < end:
            if not self._poll():
                time.sleep(0.002)

    def _swap(self, frame: Frame) -> None:
        if len(self._frames) > 64:
            for k in list(self._frames)[:32]:
                if k != frame.key:
                    del self._frames[k]
        self._frames[frame.key] = frame
        self._frame = frame
        # the window's title too marks an attacked or optimised input
        title = self._title + (f" (window {frame.sample}, modified)" if frame.variant is not None else "")
        if self.canvas.title != title:
            self.canvas.title = title
        self.refresh()

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Rebuilds the level's geometry from the frame and the state, and uploads it."""
        if self._frame is None:
            self._update_hud()
            return
        st = self.state
        layer_ok = st.level != 4 or st.layer in self._frame.clusters or not self._needs_clusters()
        if st.level == 4 and not layer_ok:  # clusters still computing: level 3 meanwhile
            st_view = ViewerState(**{k: getattr(st, k) for k in (
                "n_samples", "layers", "sample", "layer", "percentile", "sort", "filter",
                "highlight", "active_only", "scroll", "has_targets", "wrt", "variant")}, level=3)
            g = build(self._frame, self.info, st_view)
        else:
            g = build(self._frame, self.info, st)
        self.upload(g)

    def upload(self, g: Geometry) -> None:
        """Puts a geometry into the visuals: one Line, one Mesh, one Markers, one Text."""
        self.geometry = g
        self._screen = None
        perm = [0, 2, 1] if g.three_d else [0, 1, 2]
        if len(g.line_pos):
            self.line.set_data(pos=g.line_pos[:, perm], connect=draw_connect(g), color=g.line_color)
            self.line.visible = True
        else:
            self.line.visible = False
        if len(g.mesh_faces):
            self.mesh.set_data(vertices=g.mesh_pos[:, perm], faces=g.mesh_faces,
                               vertex_colors=g.mesh_color)
            self.mesh.visible = True
        else:
            self.mesh.visible = False
        if len(g.marker_pos):
            self.markers.set_data(g.marker_pos[:, perm], face_color=g.marker_color,
                                  size=g.marker_size, edge_width=0)
            self.markers.visible = True
        else:
            self.markers.visible = False
        shown = draw_text(g)
        if shown:
            self.text.text = [g.text[i] for i in shown]
            self.text.pos = g.text_pos[shown][:, perm]
            self.text.color = g.text_color[shown]
            self.text.visible = True
        else:
            self.text.visible = False
        if self._camera_level != self.state.level:
            self._set_camera()
        self._update_hud()
        self.canvas.update()

    def _set_camera(self, reset: bool = False) -> None:
        level = self.state.level
        cam = self.cameras[level]
        g = self.geometry
        self.view.camera = cam
        if g is not None and (reset or not getattr(cam, "_tsviz_ranged", False)):
            (x0, x1), (y0, y1), (d0, d1) = g.bounds
            mx, my = 0.04 * (x1 - x0), 0.06 * (y1 - y0)
            if g.three_d:
                if reset:
                    cam.azimuth, cam.elevation = 0.0, (22.0 if level == 2 else 0.0)
                cam.set_range(x=(x0 - mx, x1 + mx), y=(d0, d1), z=(y0 - my, y1 + my))
                cam.center = ((x0 + x1) / 2, (d0 + d1) / 2, (y0 + y1) / 2)
                w, h = self.canvas.size  # scale_factor: the visible extent across the shorter side
                cam.scale_factor = 1.05 * max((x1 - x0) * min(w, h) / w, (y1 - y0 + 0.5 * (d1 - d0)) * min(w, h) / h)
            else:
                cam.set_range(x=(x0 - mx, x1 + mx), y=(y0 - my, y1 + my), margin=0)
            self._fit()
            cam._tsviz_ranged = True
        self._camera_level = level

    def char_px(self, font_size: float) -> float:
        """Upper estimate of one character's width in canvas pixels at ``font_size`` points."""
        return CHAR_EM * font_size * self.canvas.dpi / 72.0

    def extents(self) -> np.ndarray:
        """Canvas pixel boxes ``(n, 4)`` (x0, y0, x1, y1) of everything the level draws: each
        line vertex, mesh vertex and highlight marker, and each label with its estimated size."""
        g = self.geometry
        if g is None:
            return np.zeros((0, 4))
        perm = [0, 2, 1] if g.three_d else [0, 1, 2]
        tr = self.line.get_transform("visual", "canvas")

        def px(p: np.ndarray) -> np.ndarray:
            if not len(p):
                return np.zeros((0, 2))
            m = tr.map(np.asarray(p)[:, perm])
            return m[:, :2] / m[:, 3:4]

        points = px(np.concatenate([g.line_pos, g.mesh_pos, g.marker_pos]))
        boxes = [np.hstack([points, points])]
        shown = draw_text(g)
        if shown:
            c = px(g.text_pos[shown])
            half = np.array([len(g.text[i]) for i in shown]) * self.char_px(LABEL_FONT) / 2
            em = LABEL_FONT * self.canvas.dpi / 72.0
            boxes.append(np.stack([c[:, 0] - half, c[:, 1] - 0.7 * em, c[:, 0] + half, c[:, 1] + 0.7 * em], axis=1))
        return np.concatenate(boxes)

    def _fit(self) -> None:
        """Zooms out (and pans) until every box of :meth:`extents` lies inside the canvas,
        clear of the status lines: labels keep their size in pixels while the scene scales,
        so a few rounds settle it."""
        cam = self.view.camera
        w, h = self.canvas.size
        avail = np.array([MARGIN, MARGIN, w - MARGIN, h - HUD_HEIGHT], np.float64)
        for _ in range(6):
            e = self.extents()
            if not len(e):
                return
            lo, hi = e[:, :2].min(axis=0), e[:, 2:].max(axis=0)
            if lo[0] >= avail[0] and lo[1] >= avail[1] and hi[0] <= avail[2] and hi[1] <= avail[3]:
                return
            factor = max((hi[0] - lo[0]) / (avail[2] - avail[0]), (hi[1] - lo[1]) / (avail[3] - avail[1]))
            shift = (lo + hi) / 2 - (avail[:2] + avail[2:]) / 2  # pixels to move the content by
            self._zoom_out(cam, max(factor, 1.0) * 1.02, shift)

    def _zoom_out(self, cam: Any, factor: float, shift: np.ndarray) -> None:
        three_d = self.geometry.three_d
        tr = self.line.get_transform("visual", "canvas")
        # pixels per scene unit along the screen's axes, measured at the camera's centre
        c = np.asarray(cam.center, np.float64)[:3] if three_d else np.r_[np.asarray(cam.rect.center), 0.0]
        up = np.array([0.0, 0.0, 1.0]) if three_d else np.array([0.0, 1.0, 0.0])
        m = tr.map(np.array([c, c + [1.0, 0.0, 0.0], c + up]))
        p = m[:, :2] / m[:, 3:4]
        ux = abs(p[1, 0] - p[0, 0]) or 1.0
        uy = abs(p[2, 1] - p[0, 1]) or 1.0
        dx, dy = shift[0] / ux, -shift[1] / uy  # canvas y grows downwards, scene y upwards
        if three_d:
            cx, cy, cz = cam.center
            cam.center = (cx + dx, cy, cz + dy)
            cam.scale_factor *= factor
        else:
            r = cam.rect
            ncx, ncy = r.center[0] + dx, r.center[1] + dy
            nw, nh = r.width * factor, r.height * factor
            cam.rect = (ncx - nw / 2, ncy - nh / 2, nw, nh)

    def status(self) -> str:
        st, f = self.state, self._frame
        # windows by index, as --index and `tsviz analyze` count them
        parts = [self.info.name, f"window {st.sample} of 0..{st.n_samples - 1}"]
        info = self.info
        if f is not None and f.key == self._key():
            if f.note:
                parts.append(f.note)
            pred = f.prediction
            if len(pred) > 1:
                parts.append(f"prediction class {int(np.argmax(pred))} ({fmt(pred.max())})")
                if f.truth is not None:
                    parts.append(f"truth class {fmt(f.truth)}")
            elif info.scaling is not None:
                parts.append(f"forecast {info.original(pred[0]):.1f}")
                if f.truth is not None:
                    parts.append(f"truth {info.original(float(f.truth)):.1f} (original scale)")
            else:
                parts.append(f"prediction {fmt(pred[0])}")
                if f.truth is not None:
                    parts.append(f"truth {fmt(f.truth)}")
            parts.append(f.explained())
        parts.append(f"level {st.level} ({LEVEL_NAMES[st.level]})")
        parts.append(f"layer {info.label(st.layer)} ({st.layer})")
        if f is not None:
            parts.append(f"filter {selected_filter(f, st, self.info, st.layer)}")
        parts.append(f"percentile >= {st.percentile:g}")
        parts.append(f"sort {st.sort}")
        parts.append(f"active_only {'on' if st.active_only else 'off'}")
        if st.highlight is not None:
            hl = st.highlight
            parts.append(f"highlight {info.label(hl.tensor).split(' · ')[0]}[{hl.filter}, {hl.position}]")
        if self._pending:
            parts.append("computing...")
        if self._error:
            parts.append(f"error: {self._error}")
        if self._message:
            parts.append(self._message)
        return " | ".join(parts)

    def _update_hud(self) -> None:
        w, h = self.canvas.size
        lines = [self.status(), f"percentile filter: >= {self.state.percentile:g}   (h: help)"]
        pos = [(10, h - 30), (10, h - 48)]
        if self.state.show_help:
            help_lines = [f"{key:>24}   {what}" for key, what in SHORTCUTS]
            for i, line in enumerate(help_lines):
                lines.append(line)
                pos.append((10, 30 + 17 * i))
            x1 = 10 + max(len(l) for l in help_lines) * self.char_px(HUD_FONT) + 10
            y0, y1 = 30 - 17 - 4, 30 + 17 * (len(help_lines) - 1) + 8
            self.help_bg.set_data(vertices=np.array([[2, y0], [x1, y0], [x1, y1], [2, y1]], np.float32),
                                  faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
                                  color=HELP_BACKGROUND)
        self.help_bg.visible = self.state.show_help
        self.hud.text = lines
        self.hud.pos = np.array(pos, np.float32)
        y = h - 12
        self.slider.set_data(pos=np.array([[10, y], [w - 10, y]], np.float32))
        n = max(self.state.n_samples - 1, 1)
        hx = 10 + (w - 20) * self.state.sample / n
        self.handle.transform.translate = (hx, y)

    def render(self) -> np.ndarray:
        """The canvas as an RGBA uint8 image ``(h, w, 4)``, row 0 at the top."""
        self.wait()
        return self.canvas.render()

    # ------------------------------------------------------------------ events
    def _on_state(self, name: str, old: Any, new: Any) -> None:
        if name == "sample" and new != old:
            self._step = 1 if new > old else -1
        if name in ("sample", "wrt", "variant"):
            self._request()
        elif name in ("level", "layer") and self._needs_clusters():
            self._request()  # refreshes at once when the clusters are known
            if self._pending:
                self.refresh()
        elif name == "show_help":
            self._update_hud()
            self.canvas.update()
        else:
            self.refresh()

    def _on_key(self, event: Any) -> None:
        st = self.state
        key = event.key.name if event.key is not None else ""
        text = event.text or ""
        shift = any(getattr(m, "name", m) == "Shift" for m in (event.modifiers or ()))
        if self._message:
            self._message = None
            self._update_hud()
        if text in ("1", "2", "3", "4"):
            st.set(level=int(text))
        elif key == "Right":
            st.step_sample(1)
        elif key == "Left":
            st.step_sample(-1)
        elif key == "PageDown":
            st.step_sample(10)
        elif key == "PageUp":
            st.step_sample(-10)
        elif key == "Home":
            st.step_sample(-st.n_samples)
        elif key == "End":
            st.step_sample(st.n_samples)
        elif key == "Up":
            st.step_percentile(10)
        elif key == "Down":
            st.step_percentile(-10)
        elif text == "]":
            st.step_percentile(1)
        elif text == "[":
            st.step_percentile(-1)
        elif text == "0":
            st.set(percentile=0.0)
        elif key == "Tab":
            st.step_layer(-1 if shift else 1)
        elif text in ("n", "p"):
            st.step_layer(1 if text == "n" else -1)
        elif text == "s":
            st.toggle_sort()
        elif text == "a":
            st.set(active_only=not st.active_only)
        elif text == "c":
            st.set(highlight=None, filter=None)
        elif text in ACTIONS:
            before = {"wrt": st.wrt, "variant": st.variant}
            try:
                getattr(self, ACTIONS[text])()
            except TSVizError as e:  # refused: said on the status line until the next key
                st.set(**before)  # the view stays as it was (targets the engine refused, say)
                self._message = f"{text} refused: {e}"
                self._update_hud()
                self.canvas.update()
        elif text == "r":
            self._set_camera(reset=True)
            self.canvas.update()
        elif text == "h":
            st.set(show_help=not st.show_help)
        elif text == "q" or key == "Escape":
            self.close()

    # ------------------------------------------------------------------ what is shown
    def toggle_wrt(self) -> None:
        """Key ``L``: explain the loss against the window's target instead of the output, or
        back; ArgumentError when the windows have no targets."""
        self.state.toggle_wrt()

    def _show(self, variant: Variant) -> None:
        """Shows ``variant`` of the current window, or the original when it is already shown."""
        self.state.set(variant=None if self.state.variant == variant else variant)

    def attack(self) -> None:
        """Key ``A``: the current window replaced by its PGD attack (:func:`tsviz_native.attack`
        against its target; a classifier's own prediction without targets); again: the original."""
        if self.truth is None and self.info.n_outputs == 1:
            raise ArgumentError("attacking a forecaster needs the windows' targets "
                                "(the y of an .npz file); these windows have none")
        self._show(Variant("attack"))

    def inverse(self) -> None:
        """Key ``I``: the current window replaced by its inverse optimisation
        (:func:`tsviz_native.inverse`) towards the largest summed activation of the selected
        filter, or of the explained output when no filter is selected; again: the original."""
        st = self.state
        self._show(Variant("inverse") if st.filter is None else Variant("inverse", st.layer, int(st.filter)))

    def original(self) -> None:
        """Key ``O``: the window itself again."""
        self.state.set(variant=None)

    @property
    def frame(self) -> Frame | None:
        """The explained sample on screen."""
        return self._frame

    def screen_points(self) -> np.ndarray:
        """The line vertices in canvas pixels (for picking), cached until the next draw."""
        g = self.geometry
        if g is None or not len(g.line_pos):
            return np.zeros((0, 2))
        if self._screen is None:
            perm = [0, 2, 1] if g.three_d else [0, 1, 2]
            tr = self.line.get_transform("visual", "canvas")
            mapped = tr.map(g.line_pos[:, perm])
            self._screen = mapped[:, :2] / mapped[:, 3:4]
        return self._screen

    def _on_press(self, event: Any) -> None:
        self._press = tuple(event.pos[:2])

    def _on_release(self, event: Any) -> None:
        if self._press is None:
            return
        x, y = event.pos[:2]
        moved = abs(x - self._press[0]) + abs(y - self._press[1])
        self._press = None
        if moved > 4:
            return  # a drag turned or panned the camera
        self.click(x, y)

    def click(self, x: float, y: float) -> None:
        """A click at canvas pixel (x, y): the slider, or a point of a plot (highlighting)."""
        w, h = self.canvas.size
        if y >= h - 22:
            frac = min(max((x - 10) / max(w - 20, 1), 0.0), 1.0)
            self.state.set(sample=int(round(frac * (self.state.n_samples - 1))), highlight=None,
                           variant=None)
            return
        if self.geometry is None:
            return
        hit = pick(self.geometry, self.screen_points(), (x, y))
        if hit is None:
            return
        plot, pos = hit
        if plot.kind == "input":
            return  # the input has no producers
        if plot.kind == "filter":
            hl = Highlight(plot.layer, plot.index, pos)
            self.state.set(layer=plot.layer, filter=plot.index, highlight=hl)
        else:
            self.state.set(highlight=Highlight(plot.tensor, plot.index, 0))

    def _on_wheel(self, event: Any) -> None:
        if self.state.level != 2 or self.geometry is None:
            return
        pts = self.screen_points()
        if not len(pts):
            return
        x, y = event.pos[:2]
        d2 = (pts[:, 0] - x) ** 2 + (pts[:, 1] - y) ** 2
        v = int(np.argmin(d2))
        for p in self.geometry.plots:
            if p.start <= v < p.start + max(p.length, 2) and p.kind == "filter":
                n = len(self.geometry.drawn.get(p.layer, [])) + self.state.scroll.get(p.layer, 0)
                step = -1 if event.delta[1] > 0 else 1
                self.state.scroll_layer(p.layer, step, n)
                self.state.set(filter=None)
                return

    def close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._worker is not None:
            self._worker.requests.put(None)
        self.canvas.close()
        try:
            vapp.quit()
        except Exception:  # no event loop running (offscreen)
            pass
