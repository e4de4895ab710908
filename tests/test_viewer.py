"""The viewer (tsviz_native.viewer): state, geometry without GL, and offscreen pixels (OSMesa)."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

import tsviz_native as tsv
from viewer_conftest import SAMPLE, components, forecaster, gl_viewer, need, project, red_mask, unavailable  # noqa: F401

from tsviz_native.viewer import geometry, palette
from tsviz_native.viewer import scene as geo
from tsviz_native.viewer.frame import Frame, ModelInfo
from tsviz_native.viewer.panels import filter_order, selected_filter
from tsviz_native.viewer.state import SHORTCUTS, Highlight, ViewerState


# ----------------------------------------------------------------------------- no GL
def test_import_does_not_load_vispy():
    code = ("import sys, tsviz_native, tsviz_native.viewer, tsviz_native.viewer.commands, "
            "tsviz_native.cli; tsviz_native.cli.build_parser(); "
            "print('vispy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)  # the installed package, not the checkout
    assert out.stdout.strip() == "False"


def test_state_emits_one_event_per_change_and_validates():
    st = ViewerState(n_samples=10, layers=("a", "b"))
    seen = []
    st.connect(lambda name, old, new: seen.append((name, old, new)))
    st.set(level=3, percentile=90.0)
    st.set(level=3)  # no change, no event
    st.step_sample(-1)  # clamps at 0: highlight stays None, nothing changes
    st.step_sample(25)
    st.toggle_sort()
    st.step_layer(1)
    assert seen == [("level", 1, 3), ("percentile", 0.0, 90.0), ("sample", 0, 9),
                    ("sort", "descending", "ascending"), ("layer", "a", "b")]
    with pytest.raises(tsv.ArgumentError, match=r"level must be one of \(1, 2, 3, 4\), got 5"):
        st.set(level=5)
    assert st.level == 3  # a refused change leaves the state as it was
    with pytest.raises(tsv.ArgumentError, match="no filter layer named 'c'; give a number 0..1, a label or a "
                                               r"tensor name: 0 = 'a' \('a'\); 1 = 'b' \('b'\)"):
        st.set(layer="c")
    with pytest.raises(tsv.ArgumentError, match="ViewerState has no field zoom"):
        st.set(zoom=2)
    with pytest.raises(tsv.ArgumentError, match="sample must be in 0..9"):
        st.set(sample=10)


@pytest.fixture(scope="module")
def frame(forecaster):
    model, X, y = forecaster
    info = ModelInfo.from_model(model)
    return model, info, Frame.compute(model, info, X, SAMPLE, y[SAMPLE], info.layer_names[:3])


def _state(info, **kw):
    return ViewerState(n_samples=SAMPLE + 1, layers=info.layer_names, **kw)


def test_level1_blocks_follow_the_model(frame):
    model, info, fr = frame
    kinds = [b.kind for b in info.blocks]
    assert kinds == ["conv", "pool", "conv", "pool", "conv", "dense"]
    g = geo.build(fr, info, _state(info, level=1))
    assert "convolution: 3" in g.legend and "pooling: 2" in g.legend and "dense: 1" in g.legend
    assert any("3 convolution, 2 pooling, 1 dense" in t for t in g.text)
    assert [p.kind for p in g.plots] == ["input", "input", "output"]
    assert g.three_d


@pytest.mark.parametrize("level", [2, 3])
@pytest.mark.parametrize("p", [0.0, 50.0, 90.0])
def test_drawn_filters_are_the_percentile_filter(frame, level, p):
    model, info, fr = frame
    g = geo.build(fr, info, _state(info, level=level, percentile=p))
    layers = info.layer_names if level == 2 else info.layer_names[:1]
    for name in layers:
        keep = np.flatnonzero(fr.ex.keep(name, p)[0])
        assert sorted(g.drawn[name]) == keep.tolist()
        assert sorted(b.filter for b in g.bars if b.layer == name) == keep.tolist()
        plotted = [pl.index for pl in g.plots if pl.kind == "filter" and pl.layer == name]
        assert sorted(plotted) == keep.tolist()


def test_all_plots_share_one_line_array(frame):
    model, info, fr = frame
    g = geo.build(fr, info, _state(info, level=2))
    assert g.line_connect.shape[1] == 2 and g.line_connect.max() < len(g.line_pos)
    assert len(g.line_color) == len(g.line_pos)
    for p in g.plots:  # every plot is one connected run of its own vertices
        if p.length > 1:
            seg = g.line_connect[(g.line_connect[:, 0] >= p.start)
                                 & (g.line_connect[:, 0] < p.start + p.length)]
            assert len(seg) == p.length - 1 and np.all(seg[:, 1] == seg[:, 0] + 1)


@pytest.mark.parametrize("sort", ["descending", "ascending"])
def test_bars_are_sorted_and_their_red_grows_with_importance(frame, sort):
    model, info, fr = frame
    name = info.layer_names[1]
    g = geo.build(fr, info, _state(info, level=3, layer=name, sort=sort))
    imp = fr.importance(name)
    order = [b.filter for b in g.bars]
    expected = sorted(range(len(imp)), key=lambda f: (-imp[f] if sort == "descending" else imp[f], f))
    assert order == expected
    red = np.array([b.color[0] for b in g.bars])
    vals = np.array([b.value for b in g.bars])
    by_imp = np.argsort(vals, kind="stable")
    assert np.all(np.diff(red[by_imp]) >= 0)
    assert red.max() > red.min() + 0.5  # the scale is used, not a constant
    assert all(b.color[1] < 0.1 and b.color[2] < 0.1 for b in g.bars)


def test_level4_colours_each_filter_by_its_cluster(frame):
    model, info, fr = frame
    name = info.layer_names[0]
    g = geo.build(fr, info, _state(info, level=4, layer=name))
    labels = np.asarray(fr.ex.clusters(name, sample=0).labels[0])
    assert {b.filter: int(b.value) for b in g.cluster_bars} == dict(enumerate(labels.tolist()))
    for b in g.cluster_bars:
        assert b.color == palette.cluster_color(labels[b.filter])
    assert len(g.legend) == labels.max() + 1
    imp = fr.importance(name)
    for c, text in enumerate(g.legend):
        members = labels == c
        assert f"{members.sum()} filters" in text
        assert f"{imp[members].mean():.2f}" in text
    colours = {palette.cluster_color(c) for c in range(40)}
    assert len(colours) == 40 and all(not (r > 0.8 and g_ < 0.2 and b_ < 0.2) for r, g_, b_, _ in colours)


@pytest.mark.parametrize("level", [2, 3])
@pytest.mark.parametrize("active_only", [False, True])
def test_highlight_markers_are_the_trace(frame, level, active_only):
    model, info, fr = frame
    name = info.layer_names[1]
    f = int(np.argmax(fr.importance(name)))
    pos = int(np.argmax(fr.activations(name)[f]))
    st = _state(info, level=level, layer=name, highlight=Highlight(name, f, pos),
                active_only=active_only)
    g = geo.build(fr, info, st)
    masks = fr.ex.trace(name, f, pos, 0, active_only)
    x_mask = masks[info.input_name]
    assert np.array_equal(g.highlighted[info.input_name], x_mask)
    act = fr.ex.activation_name(name)
    assert g.highlighted[act][f, pos]
    # marker positions: exactly the plotted vertices of the traced points (core + glow each)
    expected = []
    for p in g.plots:
        m = masks.get(p.tensor)
        if m is not None and p.index < m.shape[0] and m.shape[1] == p.length:
            expected += [tuple(v) for v in g.line_pos[p.start + np.flatnonzero(m[p.index])]]
    n = len(expected)
    assert n == len(g.marker_pos) // 2 > 0
    assert sorted(map(tuple, g.marker_pos[n:])) == sorted(expected)


def test_pick_maps_a_click_to_a_plot_point(frame):
    model, info, fr = frame
    g = geo.build(fr, info, _state(info, level=3))
    screen = g.line_pos[:, :2] * 100.0  # any projection: picking runs on mapped vertices
    p = next(p for p in g.plots if p.kind == "filter")
    x, y = screen[p.start + 7]
    hit = geometry.pick(g, screen, (x + 0.5, y - 0.5), radius=3)
    assert hit is not None and hit[0] == p and hit[1] == 7
    assert geometry.pick(g, screen, (-1e6, -1e6)) is None


def test_shortcuts_cover_the_keys():
    keys = " ".join(k for k, _ in SHORTCUTS)
    for k in ("1 2 3 4", "Left", "Up", "s", "a", "h", "wheel", "L (Shift+l)", "A (Shift+a)", "I (Shift+i)", "O (Shift+o)"):
        assert k in keys


# ----------------------------------------------------------------------------- pixels (OSMesa)
def _render(v, **state):
    base = dict(level=1, percentile=0.0, sort="descending", highlight=None, filter=None,
                active_only=False, scroll={}, layer=v.info.layer_names[0], wrt="output", variant=None)
    base.update(state)
    v.state.set(**base)
    return v.render()


def _bar_red(v, img, bar):
    """Median red of the bar's own red pixels (a line drawn across it is skipped)."""
    c = project(v, np.array([bar.center]))[0]
    x, y = int(round(c[0])), int(round(c[1]))
    patch = img[y - 1 : y + 2, x - 1 : x + 2]
    reds = patch[red_mask(patch)]
    assert len(reds), f"no red at bar of filter {bar.filter} ({x}, {y})"
    return float(np.median(reds[:, 0]))


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_every_level_renders(gl_viewer, level):
    img = _render(gl_viewer, level=level)
    assert img.shape == (1000, 1800, 4)
    bg = np.round(np.array(palette.BACKGROUND[:3]) * 255)
    drawn = np.abs(img[..., :3].astype(int) - bg).max(axis=2) > 30
    assert drawn.mean() > 0.01
    if level in (2, 3, 4):
        assert red_mask(img).sum() > 100


@pytest.mark.parametrize("sort", ["descending", "ascending"])
def test_level2_one_red_bar_per_filter_in_importance_order(gl_viewer, sort):
    v = gl_viewer
    img = _render(v, level=2, sort=sort)
    g = v.geometry
    n_drawn = sum(len(d) for d in g.drawn.values())
    _, n = components(red_mask(img[:-60]))  # the status line and slider are not bars
    assert n == n_drawn == len(g.bars) == 81
    for name in v.info.layer_names[:3]:
        bars = [b for b in g.bars if b.layer == name]
        by_depth = sorted(bars, key=lambda b: b.center[2])  # front first = drawing order
        assert [b.filter for b in by_depth] == g.drawn[name]
        reds = np.array([_bar_red(v, img, b) for b in by_depth])
        imps = np.array([b.value for b in by_depth])
        # front to back, the bars' red follows the sort order of importance (ties: equal)
        d = np.diff(reds)
        assert np.all(d <= 2) if sort == "descending" else np.all(d >= -2)
        assert reds[np.argmax(imps)] > reds[np.argmin(imps)] + 100
        # the screen order of the bars, left to right, follows the drawing order
        xs = project(v, np.array([b.center for b in by_depth]))[:, 0]
        assert np.all(np.diff(xs) > 0)


def test_level4_shows_one_colour_per_cluster(gl_viewer):
    v = gl_viewer
    img = _render(v, level=4, layer=v.info.layer_names[1])
    g = v.geometry
    k = len(g.legend)
    assert k == len({b.value for b in g.cluster_bars}) >= 2
    seen = set()
    for b in g.cluster_bars:
        x, y = np.round(project(v, np.array([b.center]))[0]).astype(int)
        px = tuple(int(c) for c in img[y, x, :3])
        assert np.allclose(px, np.array(b.color[:3]) * 255, atol=3), (b, px)
        seen.add(px)
    assert len(seen) == k
    # every palette colour in use appears in the image, and no other cluster colour does
    for c in range(k + 3):
        want = np.round(np.array(palette.cluster_color(c)[:3]) * 255)
        count = (np.abs(img[..., :3].astype(int) - want).max(axis=2) <= 3).sum()
        assert (count > 50) == (c < k), (c, count)


def test_percentile_90_draws_a_tenth_of_the_filters(gl_viewer):
    v = gl_viewer
    name = v.info.layer_names[1]
    F = v.info.layers[1].n_filters
    img = _render(v, level=3, layer=name, percentile=90.0)
    _, n = components(red_mask(img[:-60]))
    keep = int(v._frame.ex.keep(name, 90.0)[0].sum())
    assert n == keep == len(v.geometry.drawn[name])
    assert abs(keep - F / 10) <= 1
    img = _render(v, level=2, percentile=90.0)
    _, n = components(red_mask(img[:-60]))
    total = sum(int(v._frame.ex.keep(l, 90.0)[0].sum()) for l in v.info.layer_names)
    assert n == total < sum(l.n_filters for l in v.info.layers) / 5


def test_highlight_changes_exactly_the_traced_input_pixels(gl_viewer):
    v = gl_viewer
    name = v.info.layer_names[1]
    before = _render(v, level=3, layer=name)
    f = selected_filter(v._frame, v.state, v.info, name)  # keeps the saliency strip as is
    pos = int(np.argmax(v._frame.activations(name)[f]))
    v.state.set(filter=f)
    before = v.render()
    v.state.set(highlight=Highlight(name, f, pos))
    after = v.render()
    g = v.geometry
    mask = v._frame.ex.trace(name, f, pos, 0, False)[v.info.input_name]
    inputs = [p for p in g.plots if p.kind == "input"]
    pts = np.concatenate([project(v, g.plot_points(p)) for p in inputs])
    traced = np.concatenate([mask[p.index] for p in inputs])
    assert 0 < traced.sum() < len(traced)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 15
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 15
    changed = np.abs(after[y0:y1, x0:x1, :3].astype(int) - before[y0:y1, x0:x1, :3]).max(axis=2) > 8
    yy, xx = np.nonzero(changed)
    cx, cy = xx + x0, yy + y0
    r = geometry.GLOW_SIZE / 2 + 1.5
    t = pts[traced]
    d_traced = np.sqrt((cx[:, None] - t[None, :, 0]) ** 2 + (cy[:, None] - t[None, :, 1]) ** 2).min(axis=1)
    assert np.all(d_traced <= r), "a pixel changed away from every traced input point"
    for x, y in np.round(t).astype(int):  # every traced point lit up at its centre
        assert changed[y - y0, x - x0]
    far = pts[~traced]
    dist = np.sqrt(((far[:, None, :] - t[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    for x, y in np.round(far[dist > r + 2]).astype(int):  # untraced points stay as they were
        assert not changed[max(y - 1 - y0, 0) : y + 2 - y0, max(x - 1 - x0, 0) : x + 2 - x0].any()


def test_click_on_a_filter_point_highlights_it(gl_viewer):
    v = gl_viewer
    _render(v, level=3, layer=v.info.layer_names[0])
    p = next(p for p in v.geometry.plots if p.kind == "filter")
    x, y = project(v, v.geometry.plot_points(p)[10:11])[0]
    v.click(x, y)
    hl = v.state.highlight
    assert hl is not None and (hl.tensor, hl.filter) == (p.layer, p.index)
    assert abs(hl.position - 10) <= 1
    assert len(v.geometry.marker_pos) > 0
    v.click(10 + (v.canvas.size[0] - 20) * 0.5, v.canvas.size[1] - 12)  # the slider
    assert v.state.sample == round(0.5 * (v.state.n_samples - 1)) and v.state.highlight is None


def test_render_command_writes_the_png(tmp_path):
    need("vispy")
    out = tmp_path / "l2.png"
    res = subprocess.run(
        [sys.executable, "-m", "tsviz_native.cli", "render", "forecaster", "--level", "2",
         "--index", "3", "--size", "640x400", "--percentile", "50",
         "--highlight", "1:0:5", "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)  # the installed package
    if res.returncode and "no vispy backend" in res.stderr:
        unavailable(res.stderr)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "level 2" in res.stdout and "highlight conv 2[0, 5]" in res.stdout and "window 3 of 0..6629" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "tsviz_native.cli", "render", "forecaster",
                          "--out", str(out), "--highlight", "nolayer:0:1"],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    assert bad.returncode == 2 and "no filter layer" in bad.stderr


def test_many_plots_draw_their_envelope_and_no_per_plot_labels():
    """Level of detail: above LOD_PLOTS plots each plot is drawn as its min/max envelope (same
    extremes, far fewer segments) and per-plot labels are left out; below it, everything."""
    rng = np.random.default_rng(0)

    def build(n):
        b = geometry.Builder()
        for k in range(n):
            b.plot(np.cumsum(rng.normal(size=200)), k * 1.1, 0.0, 1.0, 0.8, 0.0, palette.FILTER_COLOR,
                   "filter", "t", "t", k)
            b.label(str(k), k * 1.1, 0.9, detail=True)
        b.label("title", 0.0, 2.0)
        return b.geometry(3, False, {}, {}, None, [])

    few = build(geometry.LOD_PLOTS)
    assert geometry.draw_connect(few) is few.line_connect
    assert len(geometry.draw_text(few)) == geometry.LOD_PLOTS + 1
    many = build(geometry.LOD_PLOTS + 1)
    conn = geometry.draw_connect(many)
    assert len(conn) < len(many.line_connect) / 2
    for p in many.plots:
        used = np.unique(conn[(conn[:, 0] >= p.start) & (conn[:, 0] < p.start + p.length)])
        y = many.line_pos[p.start : p.start + p.length, 1]
        drawn = many.line_pos[used, 1]
        assert drawn.min() == y.min() and drawn.max() == y.max()
        assert {p.start, p.start + p.length - 1} <= set(used.tolist())
    assert [many.text[i] for i in geometry.draw_text(many)] == ["title"]


def test_bulk_rows_add_what_one_call_per_plot_adds():
    """Builder.plot_rows (with and without frames) and quad_rows give the same arrays, plots
    and order as frame(), plot() and quad() called once per row."""
    rng = np.random.default_rng(1)
    for length in (1, 2, 9):
        n = 6
        values = rng.normal(size=(n, length)).astype(np.float32)
        x0, y0, d = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(0, 1, n)
        colors = rng.uniform(0, 1, (n, 4))
        frames = np.stack([x0 - 0.1, y0 - 0.05, np.full(n, 1.2), np.full(n, 0.9)], axis=1)
        qx = rng.uniform(-1, 1, (2, n))
        for with_frames in (False, True):
            one, bulk = geometry.Builder(), geometry.Builder()
            for b in (one, bulk):  # something before, so that indices are offset
                b.frame(0.0, 0.0, 1.0, 1.0)
                b.quad(0.0, 0.0, 1.0, 1.0, 0.0, palette.FRAME_COLOR)
            for k in range(n):
                if with_frames:
                    one.frame(*frames[k], d[k])
                one.plot(values[k], x0[k], y0[k], 1.3, 0.7, d[k], colors[k], "filter", "t", "L", 10 + k,
                         -1.5, 2.0)
                one.quad(qx[0, k], y0[k], qx[1, k], y0[k] + 0.1, d[k], colors[k])
            bulk.plot_rows(values, x0, y0, 1.3, 0.7, d, colors, "filter", "t", "L", 10 + np.arange(n),
                           -1.5, 2.0, frames=frames if with_frames else None)
            bulk.quad_rows(qx[0], y0, qx[1], y0 + 0.1, d, colors)
            a = one.geometry(3, False, {}, {}, None, [])
            b = bulk.geometry(3, False, {}, {}, None, [])
            for name in ("line_pos", "line_connect", "line_color", "mesh_pos", "mesh_faces", "mesh_color"):
                x, y = getattr(a, name), getattr(b, name)
                assert x.dtype == y.dtype and np.array_equal(x, y), (length, with_frames, name)
            assert a.plots == b.plots and a.bounds == b.bounds


def test_envelope_of_bulk_rows_is_that_of_one_call_per_plot():
    """With more plots than LOD_PLOTS, draw_connect draws the same segments (frames whole,
    plots as envelopes) whether the plots came from plot_rows, with and without frames, or
    from frame() and plot() once per plot; short plots and other lines stay whole."""
    rng = np.random.default_rng(3)
    n, length = geometry.LOD_PLOTS + 5, 150
    values = np.round(rng.normal(size=(n, length)), 1).astype(np.float32)  # ties
    x0, y0, d = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.uniform(0, 1, n)
    frames = np.stack([x0 - 0.1, y0 - 0.05, np.full(n, 1.2), np.full(n, 0.9)], axis=1)
    short = rng.normal(size=(3, 9))
    for with_frames in (False, True):
        one, bulk = geometry.Builder(), geometry.Builder()
        for b in (one, bulk):
            b.frame(0.0, 0.0, 1.0, 1.0)
            b.plot(short[0], 0.0, 0.0, 1.0, 1.0, 0.0, palette.INPUT_COLOR, "input", "x", None, 0)
        for k in range(n):
            if with_frames:
                one.frame(*frames[k], d[k])
            one.plot(values[k], x0[k], y0[k], 1.3, 0.7, d[k], palette.FILTER_COLOR, "filter", "t", "L",
                     k, -3.0, 3.0)
        bulk.plot_rows(values, x0, y0, 1.3, 0.7, d, palette.FILTER_COLOR, "filter", "t", "L",
                       np.arange(n), -3.0, 3.0, frames=frames if with_frames else None)
        for b in (one, bulk):
            b.plot_rows(short[1:], 0.0, 0.0, 1.0, 1.0, 0.0, palette.FILTER_COLOR, "filter", "u", "M",
                        [0, 1], -3.0, 3.0)
        a = one.geometry(3, False, {}, {}, None, [])
        b = bulk.geometry(3, False, {}, {}, None, [])
        assert np.array_equal(a.line_connect, b.line_connect)
        conn_a, conn_b = geometry.draw_connect(a), geometry.draw_connect(b)
        assert len(conn_a) < len(a.line_connect) / 2
        assert sorted(map(tuple, conn_a.tolist())) == sorted(map(tuple, conn_b.tolist()))
        # the frames and the short plots are drawn whole
        whole = [p for p in a.plots if p.length == 9]
        segs = set(map(tuple, conn_a.tolist()))
        for p in whole:
            assert {(p.start + i, p.start + i + 1) for i in range(8)} <= segs
        assert {(0, 1), (1, 2), (2, 3), (3, 4)} <= segs
        if with_frames:  # each plot's frame: its five vertices just before the plot's
            for p in a.plots:
                if p.length == length:
                    assert {(p.start - 5 + i, p.start - 4 + i) for i in range(4)} <= segs


def test_envelope_keeps_each_buckets_first_extremes():
    """draw_connect against a bucket-by-bucket argmin / argmax, with ties and NaN."""
    rng = np.random.default_rng(2)
    b = geometry.Builder()
    for k in range(geometry.LOD_PLOTS + 1):
        v = np.round(rng.normal(size=150), 1)  # many ties
        if k % 50 == 7:
            v[rng.integers(0, 150, 3)] = np.nan
        b.plot(v, k * 1.1, 0.0, 1.0, 0.8, 0.0, palette.FILTER_COLOR, "filter", "t", "t", k, -3.0, 3.0)
    g = b.geometry(3, False, {}, {}, None, [])
    want = []
    edges = np.linspace(0, 150, geometry.LOD_BUCKETS + 1).astype(np.int64)
    for p in g.plots:
        y = g.line_pos[p.start : p.start + p.length, 1]
        keep = {0, p.length - 1}
        for lo, hi in zip(edges[:-1], edges[1:]):
            keep |= {int(lo + np.argmin(y[lo:hi])), int(lo + np.argmax(y[lo:hi]))}
        keep = sorted(keep)
        want += [(p.start + i, p.start + j) for i, j in zip(keep[:-1], keep[1:])]
    assert geometry.draw_connect(g).tolist() == [list(w) for w in want]


# ----------------------------------------------------------------------------- the issue-13 fixes
@pytest.fixture(scope="module")
def gunpoint_frame():
    from tsviz_native import models

    model = tsv.load(models.path("fcn-gunpoint"))
    X, y = models.gunpoint("test")
    info = ModelInfo.from_model(model)
    return model, info, Frame.compute(model, info, X, 3, y[3])


def test_classifier_output_is_one_numbered_bar_per_class_with_the_target_marked(gunpoint_frame):
    model, info, fr = gunpoint_frame
    g = geo.build(fr, info, ViewerState(n_samples=10, layers=info.layer_names, level=3))
    outs = [p for p in g.plots if p.kind == "output"]
    assert [p.index for p in outs] == [0, 1] and all(p.length == 1 for p in outs)
    for p in outs:  # no line through the classes: the output's points are not connected
        assert not np.isin(g.line_connect, np.arange(p.start, p.start + 2)).any()
    target = int(fr.ex.target[0])
    y = fr.prediction
    # the bar tops follow the class values; the target is bright, the other class dim
    tops = [g.line_pos[p.start, 1] for p in outs]
    assert (tops[0] > tops[1]) == (y[0] > y[1])
    assert "0" in g.text and "1" in g.text
    assert any(t.startswith(f"explained: class {target}") for t in g.text)
    bright = np.all(np.isclose(g.mesh_color, palette.OUTPUT_COLOR), axis=1).sum()
    dim = np.all(np.isclose(g.mesh_color, palette.OUTPUT_DIM_COLOR), axis=1).sum()
    assert bright == 4 and dim == 4  # one quad (4 vertices) each


def test_forecast_is_drawn_as_the_next_point_after_the_input(forecaster):
    from tsviz_native import models

    model, X, y = forecaster
    scaling = {k: models.info("forecaster")["scaling"][k] for k in ("mean", "std")}
    info = ModelInfo.from_model(model, scaling)
    fr = Frame.compute(model, info, X, SAMPLE, y[SAMPLE])
    for level in (1, 2, 3):
        g = geo.build(fr, info, ViewerState(n_samples=SAMPLE + 1, layers=info.layer_names, level=level))
        signal = next(p for p in g.plots if p.kind == "input" and p.index == 0)
        out = next(p for p in g.plots if p.kind == "output")
        pts = g.plot_points(signal)
        fx = g.line_pos[out.start : out.start + 2, 0].mean()
        step = pts[1, 0] - pts[0, 0]
        assert fx == pytest.approx(pts[-1, 0] + step, rel=1e-4)  # one time step after the window
        # on the signal's own axis: the vertical map of the signal also maps the forecast
        x0 = fr.x[0]
        slope = (pts[-1, 1] - pts[0, 1]) / (x0[-1] - x0[0])
        assert g.line_pos[out.start, 1] == pytest.approx(pts[0, 1] + slope * (fr.prediction[0] - x0[0]), abs=1e-4)
        truth_quads = np.all(np.isclose(g.mesh_color, palette.TRUTH_COLOR), axis=1).sum()
        assert truth_quads == 4
        pred = fr.prediction[0] * scaling["std"] + scaling["mean"]
        assert f"forecast {pred:.1f} (green)" in g.text and "next value, original scale:" in g.text
        assert f"truth {y[SAMPLE] * scaling['std'] + scaling['mean']:.1f} (pink)" in g.text
        assert not any(t.startswith("explained: output") for t in g.text)  # no empty output box


def _wide_model():
    """Twelve convolutions in a row, with long labels: wider than the shipped models."""
    from onnx import helper

    from onnx_builder import build, const, weights

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(12):
        cin = 3 if i == 0 else 6
        nodes += [helper.make_node("Conv", [prev, f"w{i}"], [f"z{i}"], pads=[1, 1]),
                  helper.make_node("Relu", [f"z{i}"], [f"a{i}"])]
        inits.append(const(f"w{i}", weights(rng, 6, cin, 3)))
        prev = f"a{i}"
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("Gemm", ["f", "gw"], ["y"], transB=1)]
    inits.append(const("gw", weights(rng, 7, 6)))
    return tsv.load(build(nodes, inits, input_shape=("N", 3, 40)))


def _models():
    from conftest import model_path, real_windows
    from tsviz_native import models

    X, y, _ = models.forecaster_windows("test")
    yield "forecaster", tsv.load(models.path("forecaster")), X[:3], y[:3], \
        {k: models.info("forecaster")["scaling"][k] for k in ("mean", "std")}
    X, y = models.gunpoint("test")
    yield "fcn-gunpoint", tsv.load(models.path("fcn-gunpoint")), X[:3], y[:3], None
    yield "resnet", tsv.load(model_path("resnet_op17")), real_windows((1, 96), "NCT", 3), None, None
    yield "wide", _wide_model(), real_windows((3, 40), "NCT", 3), None, None


@pytest.mark.parametrize("which", ["forecaster", "fcn-gunpoint", "resnet", "wide"])
def test_every_visual_lies_inside_the_canvas_on_every_level(which):
    from viewer_conftest import _backend

    _backend()
    from tsviz_native.viewer.app import HUD_HEIGHT, Viewer

    name, model, X, y, scaling = next(m for m in _models() if m[0] == which)
    v = Viewer(model, X, y, size=(1400, 850), show=False, threaded=False, scaling=scaling)
    try:
        for level in (1, 2, 3, 4):
            v.state.set(level=level, layer=v.info.layer_names[-2])
            img = v.render()
            w, h = v.canvas.size
            e = v.extents()
            assert len(e) and e[:, :2].min() >= 0 and e[:, 2].max() <= w and e[:, 3].max() <= h - HUD_HEIGHT + 1, \
                (which, level, e[:, :2].min(axis=0), e[:, 2:].max(axis=0))
            bg = np.round(np.array(palette.BACKGROUND[:3]) * 255)
            drawn = np.abs(img[..., :3].astype(int) - bg).max(axis=2) > 30
            # nothing touches the left, right or top edge: nothing is cut off there
            assert not drawn[:, :3].any() and not drawn[:, -3:].any() and not drawn[:3].any(), (which, level)
            if level in (1, 3):
                _assert_output_pixels(v, img, which)
    finally:
        v.close()


def _colour_at(v, img, pts3):
    x, y = np.round(project(v, np.asarray(pts3))[0]).astype(int)
    return img[y - 1 : y + 2, x - 1 : x + 2, :3].reshape(-1, 3).astype(int)


def _assert_output_pixels(v, img, which):
    """The output as drawn: the forecast's green square after the input and the truth's pink
    one beside it; a classifier's bars, the explained class bright and the others dim."""
    g = v.geometry
    outs = [p for p in g.plots if p.kind == "output"]
    if which == "forecaster":
        (out,) = outs
        want = np.round(np.array(palette.OUTPUT_COLOR[:3]) * 255)
        assert (np.abs(_colour_at(v, img, g.line_pos[out.start : out.start + 2].mean(axis=0)[None]) - want).max(axis=1) <= 3).any()
        truth = np.all(np.isclose(g.mesh_color, palette.TRUTH_COLOR), axis=1)
        want = np.round(np.array(palette.TRUTH_COLOR[:3]) * 255)
        assert (np.abs(_colour_at(v, img, g.mesh_pos[truth].mean(axis=0)[None]) - want).max(axis=1) <= 3).any()
        return
    target = int(v._frame.ex.target[0])
    assert [p.index for p in outs] == list(range(v.info.n_outputs))
    for p in outs:
        top = g.line_pos[p.start]
        inside = (top + [0, -0.01, 0])[None]  # just below the top of the bar
        colour = palette.OUTPUT_COLOR if p.index == target else palette.OUTPUT_DIM_COLOR
        want = np.round(np.array(colour[:3]) * 255)
        if v._frame.prediction[p.index] > 0.05:  # a bar tall enough to hit
            assert (np.abs(_colour_at(v, img, inside) - want).max(axis=1) <= 3).any(), (which, p.index)


def test_view_errors_are_tsviz_errors_in_one_line(tmp_path):
    need("vispy")
    from tsviz_native.viewer.backend import BackendError

    assert issubclass(BackendError, tsv.TSVizError)
    import os

    env = dict(os.environ, TSVIZ_GL_BACKEND="nosuch")
    res = subprocess.run([sys.executable, "-m", "tsviz_native.cli", "render", "forecaster", "--out",
                          str(tmp_path / "x.png")], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("tsviz: error: no vispy backend works here (nosuch: ")


def test_help_overlay_has_a_background_and_the_status_line_counts_by_index(gl_viewer):
    from tsviz_native.viewer.app import HELP_BACKGROUND

    v = gl_viewer
    v.state.set(level=3, layer=v.info.layer_names[1], highlight=None, filter=None)
    v.state.set(show_help=False)
    img = v.render()
    v.state.set(show_help=True)
    helped = v.render()
    v.state.set(show_help=False)
    want = np.round(np.array(HELP_BACKGROUND[:3]) * HELP_BACKGROUND[3] * 255
                    + np.array(palette.BACKGROUND[:3]) * (1 - HELP_BACKGROUND[3]) * 255)
    box = v.help_bg.mesh_data.get_vertices()
    x0, y0 = box.min(axis=0).astype(int) + 2
    x1, y1 = box.max(axis=0).astype(int) - 2
    region = helped[y0:y1, x0:x1, :3].astype(int)
    # the panel's colour covers most of its box (the rest is text), where the scene was before
    share = (np.abs(region - want).max(axis=2) <= 6).mean()
    assert share > 0.6, share
    assert (np.abs(img[y0:y1, x0:x1, :3].astype(int) - want).max(axis=2) <= 6).mean() < share - 0.2
    status = v.status()
    n = v.state.n_samples
    assert f"window {v.state.sample} of 0..{n - 1}" in status and "/" not in status.split(" | ")[1]
    layer = v.info.layers[1]
    assert f"layer {layer.label} ({layer.name})" in status


# ----------------------------------------------------------------------------- issue 15: loss, attack, inverse
def _press(v, text):
    """A key press as vispy delivers it: the key's name and the text it types."""
    from types import SimpleNamespace

    shift = text.isupper()
    v._on_key(SimpleNamespace(key=SimpleNamespace(name=text.upper()), text=text,
                              modifiers=("Shift",) if shift else ()))


def _modified_pixels(img):
    """Pixels of the modified-input colour (the title of an attacked or optimised input),
    antialiased over the background: red high, green about 0.8 of it, blue low."""
    r, g, b = (img[..., i].astype(float) for i in range(3))
    return ((r > 120) & (g > 0.65 * r) & (g < 0.92 * r) & (b < 0.5 * r)).sum()


def test_state_toggles_wrt_only_with_targets_and_a_new_sample_drops_the_variant():
    from tsviz_native.viewer.state import Variant

    st = ViewerState(n_samples=5, layers=("a",))
    with pytest.raises(tsv.ArgumentError, match="explaining the loss needs the windows' targets"):
        st.toggle_wrt()
    assert st.wrt == "output"
    st = ViewerState(n_samples=5, layers=("a",), has_targets=True)
    seen = []
    st.connect(lambda name, old, new: seen.append(name))
    st.toggle_wrt()
    st.set(variant=Variant("attack"))
    st.step_sample(1)
    assert st.wrt == "loss" and st.variant is None and seen == ["wrt", "variant", "sample", "variant"]
    with pytest.raises(tsv.ArgumentError, match="variant must be None or a Variant"):
        st.set(variant=Variant("blur"))
    with pytest.raises(tsv.ArgumentError, match="wrt must be one of"):
        st.set(wrt="input")


@pytest.fixture(scope="module")
def gunpoint_viewer():
    from viewer_conftest import _backend

    _backend()
    from tsviz_native import models
    from tsviz_native.viewer.app import Viewer

    model = tsv.load(models.path("fcn-gunpoint"))
    X, y = models.gunpoint("test")
    v = Viewer(model, X[:20], y[:20], sample=12, level=3, size=(1400, 850), show=False, threaded=False)
    yield v, model, X[:20], y[:20]
    v.close()


def test_loss_key_shows_the_importance_of_the_loss(gunpoint_viewer):
    v, model, X, y = gunpoint_viewer
    layer = v.info.layer_names[2]  # conv 3: its ranking differs for the loss on window 12
    _render(v, level=3, layer=layer, sample=12)
    out = model.explain(X[12:13])
    loss = model.explain(X[12:13], wrt="loss", y_true=y[12:13])
    assert np.allclose(v.frame.importance(layer), out.importance[layer][0])
    before = v.render()
    _press(v, "L")
    assert v.state.wrt == "loss" and v.frame.wrt == "loss"
    for name in v.info.layer_names:
        assert np.allclose(v.frame.importance(name), loss.importance[name][0], atol=1e-6)
    imp = loss.importance[layer][0]
    assert np.abs(imp - out.importance[layer][0]).max() > 0.2  # the toggle can be seen
    title = f"window 12 · explaining the loss (cross_entropy) = {float(loss.loss[0]):.4g}"
    assert title in v.geometry.text and "explaining the loss (cross_entropy)" in v.status()
    after = v.render()
    # the bars as drawn: sorted by the loss's importance, their red follows it
    assert [b.filter for b in v.geometry.bars] == filter_order(imp, np.ones(len(imp), bool), "descending")
    f = int(np.argmax(np.abs(imp - out.importance[layer][0])))
    bar = next(b for b in v.geometry.bars if b.filter == f)
    red = _bar_red(v, after, bar)
    assert abs(red - 255 * palette.bar_color(imp[f])[0]) < 12
    assert abs(red - 255 * palette.bar_color(out.importance[layer][0][f])[0]) > 40
    assert np.abs(after.astype(int) - before).max(axis=2).astype(bool).sum() > 1000
    _press(v, "L")
    assert v.state.wrt == "output" and "window 12 · explaining class 1" in v.geometry.text
    assert np.array_equal(v.render(), before)


def test_loss_key_is_refused_without_targets(gunpoint_viewer):
    from tsviz_native.viewer.app import Viewer

    _, model, X, _ = gunpoint_viewer
    v = Viewer(model, X[:3], None, size=(500, 300), show=False, threaded=False)
    try:
        _press(v, "L")
        assert v.state.wrt == "output" and v.frame.wrt == "output"
        assert "L refused: explaining the loss needs the windows' targets" in v.status()
        _press(v, "s")  # the next key clears the message
        assert "refused" not in v.status()
        # targets the engine refuses (class 5 of 2): refused when computed, the view unchanged
        v.truth = np.array([5, 5, 5])
        v.state.set(has_targets=True)
        _press(v, "L")
        assert v.state.wrt == "output" and v.frame.wrt == "output" and "L refused: " in v.status()
    finally:
        v.close()


def test_attack_key_shows_the_pgd_attacked_window_and_o_restores_the_original(gl_viewer, forecaster):
    from tsviz_native.viewer.frame import ATTACK_SHARE, ATTACK_STEPS

    v = gl_viewer
    model, X, y = forecaster
    layer = v.info.layer_names[1]
    before = _render(v, level=3, layer=layer, sample=SAMPLE)
    assert _modified_pixels(before) == 0
    x = X[SAMPLE]
    eps = ATTACK_SHARE * float(x.max() - x.min())
    r = tsv.attack(model, x, y[SAMPLE : SAMPLE + 1], method="pgd", eps=eps, steps=ATTACK_STEPS, seed=0)
    assert r.loss_after[0] > r.loss_before[0]
    _press(v, "A")
    fr = v.frame
    assert v.state.variant is not None and fr.variant == v.state.variant
    assert np.allclose(fr.x, r.x_adv[0], atol=1e-6) and np.abs(fr.x - x).max() > 0.5 * eps
    assert np.allclose(fr.ex.output_saliency[0], r.saliency_after[0], rtol=1e-5, atol=1e-7)
    adv = model.explain(r.x_adv)
    f = selected_filter(fr, v.state, v.info, layer)
    assert np.allclose(fr.saliency(layer, f), adv.saliency(layer, f)[0], rtol=1e-5, atol=1e-7)
    assert np.allclose(fr.importance(layer), adv.importance[layer][0], atol=1e-6)
    assert fr.prediction[0] == pytest.approx(float(r.output_after[0, 0]), abs=1e-5)
    note = f"modified: PGD-attacked, eps {eps:.3g} = 2% of its range"
    assert f"window {SAMPLE}, {note} · explaining output 0" in v.geometry.text and note in v.status()
    attacked = v.render()
    assert _modified_pixels(attacked) > 30  # the title says so, in its own colour
    assert v.canvas.title == f"TSViz: {v.info.name} (window {SAMPLE}, modified)"
    # the input plot follows the attacked window
    sig = next(p for p in v.geometry.plots if p.kind == "input" and p.index == 1)
    ys = v.geometry.plot_points(sig)[:, 1]
    assert np.corrcoef(ys, r.x_adv[0][1])[0, 1] > 0.999
    _press(v, "O")
    assert v.state.variant is None and np.array_equal(v.frame.x, x)
    assert v.canvas.title == f"TSViz: {v.info.name}"
    assert np.array_equal(v.render(), before)
    _press(v, "A")
    _press(v, "A")  # again: the original
    assert v.state.variant is None and np.array_equal(v.render(), before)


def test_inverse_key_optimises_the_selected_filter_or_the_output(gl_viewer, forecaster):
    from tsviz_native.viewer.frame import INVERSE_BOUND_SHARE, INVERSE_LR_SHARE, INVERSE_STEPS

    v = gl_viewer
    model, X, y = forecaster
    layer = v.info.layer_names[2]
    before = _render(v, level=3, layer=layer, sample=SAMPLE)
    v.state.set(filter=17)
    x = X[SAMPLE]
    span = float(x.max() - x.min())
    kw = dict(goal="max", steps=INVERSE_STEPS, lr=INVERSE_LR_SHARE * span, max_change=INVERSE_BOUND_SHARE * span)
    r = tsv.inverse(model, x, layer=layer, filter=17, **kw)
    _press(v, "I")
    fr = v.frame
    assert np.allclose(fr.x, r.x, atol=1e-6)
    ref = model.explain(r.x[np.newaxis])
    assert np.allclose(fr.ex.output_saliency[0], ref.output_saliency[0], rtol=1e-5, atol=1e-7)
    assert np.allclose(fr.saliency(layer, 17), ref.saliency(layer, 17)[0], rtol=1e-5, atol=1e-7)
    assert fr.activations(layer)[17].sum() == pytest.approx(float(r.value[-1, 0]), rel=1e-4)
    assert r.value[-1, 0] > r.value[0, 0] + 0.5  # the filter responds more
    assert any(t.startswith(f"window {SAMPLE}, modified: optimised to max sum_i a[17, i] of conv 3")
               for t in v.geometry.text)
    assert _modified_pixels(v.render()) > 30
    v.state.set(filter=None)
    _press(v, "I")  # no filter selected: the explained output
    out = tsv.inverse(model, x, **kw)
    assert np.allclose(v.frame.x, out.x, atol=1e-6) and not np.allclose(out.x, r.x)
    assert v.frame.prediction[0] == pytest.approx(float(out.value[-1, 0]), rel=1e-4)
    assert "modified: optimised to max output unit 0" in v.status()
    _press(v, "I")  # again: the original
    assert v.state.variant is None and np.array_equal(v.render(), before)


def test_attack_key_is_refused_on_a_forecaster_without_targets(forecaster):
    from viewer_conftest import _backend

    _backend()
    from tsviz_native.viewer.app import Viewer

    model, X, _ = forecaster
    v = Viewer(model, X[:3], None, size=(500, 300), show=False, threaded=False)
    try:
        _press(v, "A")
        assert v.state.variant is None and "A refused: attacking a forecaster needs the windows' targets" in v.status()
    finally:
        v.close()


def test_readme_key_table_is_the_help_overlay():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("| key | what it does |", 1)[1].split("\n\n", 1)[0]
    rows = [tuple(c.strip() for c in line.strip("|").split("|")) for line in table.strip().splitlines()[1:]]
    assert rows == list(SHORTCUTS)


def test_render_command_explains_the_loss_of_an_attacked_window(tmp_path):
    need("vispy")
    out = tmp_path / "loss.png"
    cmd = [sys.executable, "-m", "tsviz_native.cli", "render", "fcn-gunpoint", "--level", "3", "--index", "12",
           "--size", "640x400", "--wrt", "loss", "--input", "attack", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    if res.returncode and "no vispy backend" in res.stderr:
        unavailable(res.stderr)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "modified: PGD-attacked, eps 0.0602" in res.stdout and "explaining the loss (cross_entropy) = " in res.stdout
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((2, 1, 150), np.float32))
    bad = subprocess.run([sys.executable, "-m", "tsviz_native.cli", "render", "fcn-gunpoint", str(data),
                          "--wrt", "loss", "--out", str(out)], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parent)
    assert bad.returncode == 2 and "--wrt loss --input original: explaining the loss needs the windows' targets" in bad.stderr


def test_refilled_labels_and_triangles_draw_as_vispy_text_and_mesh(gl_viewer):
    """After sample switches (buffers refilled in place, layouts reused) the viewer's labels,
    status line and triangles draw exactly what vispy's own Text and Mesh draw from the same
    geometry."""
    from vispy.scene import visuals

    from tsviz_native.viewer.app import HUD_FONT, LABEL_FONT

    v = gl_viewer
    for level in (2, 3):
        v.state.set(level=level, sample=SAMPLE + 1)
        v.state.set(sample=SAMPLE + 2)
        ours = v.canvas.render()
        g = v.geometry
        perm = [0, 2, 1] if g.three_d else [0, 1, 2]
        shown = geometry.draw_text(g)
        mesh = visuals.Mesh(vertices=g.mesh_pos[:, perm], faces=g.mesh_faces,
                            vertex_colors=g.mesh_color, parent=v.view.scene)
        mesh.order = -1  # first, as the viewer's own
        # the same glyph atlas: another atlas places glyphs elsewhere (a pixel may differ)
        text = visuals.Text([g.text[i] for i in shown], pos=g.text_pos[shown][:, perm],
                            color=g.text_color[shown], font_size=LABEL_FONT,
                            font_manager=v.text._font_manager, parent=v.view.scene)
        text.order = v.text.order
        hud = visuals.Text(v.hud.text, pos=v.hud.pos, color=palette.TEXT_COLOR, font_size=HUD_FONT,
                           anchor_x="left", anchor_y="bottom", font_manager=v.hud._font_manager,
                           parent=v.canvas.scene)
        hud.order = v.hud.order
        v.mesh.visible = v.text.visible = v.hud.visible = False
        try:
            theirs = v.canvas.render()
        finally:
            for vis in (mesh, text, hud):
                vis.parent = None
            v.mesh.visible = v.text.visible = v.hud.visible = True
        assert np.array_equal(ours, theirs), level


def test_a_sample_switch_lays_out_only_the_labels_that_changed(gl_viewer, monkeypatch):
    from tsviz_native.viewer import app

    v = gl_viewer
    v.state.set(level=2, sample=SAMPLE)
    v.canvas.render()
    laid = []
    if app._LAYOUT is None:
        pytest.skip("this vispy lays out labels itself")
    layout = app._layout_many
    monkeypatch.setattr(app, "_layout_many", lambda ts, *a: (laid.extend(ts), layout(ts, *a))[1])
    v.state.set(sample=SAMPLE + 3)
    v.canvas.render()
    labels = [v.geometry.text[i] for i in geometry.draw_text(v.geometry)]
    assert laid and all(str(SAMPLE + 3) in t or t.startswith("explained") for t in laid), laid
    assert len(laid) < len(labels) / 2  # the layer labels were laid out before
    n = len(laid)
    v.state.set(sample=SAMPLE)  # strings seen before: nothing to lay out
    v.canvas.render()
    assert len(laid) == n


def test_label_layout_is_vispys_to_the_bit(gl_viewer):
    """The labels' numpy layout against vispy's own (``_text_to_vbo``): the viewer's strings
    and random ones, every anchor; line breaks and unseen glyphs go to vispy's."""
    import random

    from vispy.visuals.text import text as vtext

    from tsviz_native.viewer import app

    if app._LAYOUT is None:
        pytest.skip("this vispy lays out labels itself")
    v = gl_viewer
    v.state.set(level=3, sample=SAMPLE)
    v.canvas.render()
    font = v.hud._font
    strings = [v.status(), *v.geometry.text, "", " ", "AVAWAVAT fi", "two\nlines", "tab\there", "新"]
    rng = random.Random(0)
    alphabet = "".join(sorted(set("".join(v.geometry.text) + v.status()))) + "AVWTYo.,:;()[]-_0123456789"
    strings += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(100)]
    for s in strings:
        for ax in ("left", "center", "right"):
            for ay in ("top", "center", "middle", "baseline", "bottom"):
                want = vtext._text_to_vbo(s, font, ax, ay, font._lowres_size, 1.1)
                got = app._layout(s, font, ax, ay, font._lowres_size, 1.1)
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (s, ax, ay)
            # all at once, as a sample switch lays out its new labels
            batch = app._layout_many(strings, font, ax, "center", font._lowres_size, 1.1)
            for s, got in zip(strings, batch):
                want = vtext._text_to_vbo(s, font, ax, "center", font._lowres_size, 1.1)
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (s, ax)


def test_labels_without_their_own_layout_draw_the_same(gl_viewer, monkeypatch):
    """With a vispy whose layout function this viewer does not know, the labels are laid out
    by vispy's Text as it is: the same image."""
    from tsviz_native.viewer import app

    v = gl_viewer
    v.state.set(level=3, sample=SAMPLE + 4)
    ours = v.canvas.render()
    monkeypatch.setattr(app, "_LAYOUT", None)
    v.text.text, v.hud.text = list(v.text.text), list(v.hud.text)  # laid out again
    assert np.array_equal(v.canvas.render(), ours)


def _poll_until(v, done, timeout: float = 30.0) -> None:
    """Drives the threaded viewer's poll (the window's timer does it) until ``done()``."""
    import time

    end = time.perf_counter() + timeout
    while not done():
        assert time.perf_counter() < end, "the worker did not answer"
        if not v._poll():
            time.sleep(0.005)


def test_threaded_viewer_explains_the_next_window_ahead(forecaster):
    """With the worker idle, the window after the shown one (in the direction of the last step)
    is explained ahead and cached: stepping to it shows it at once, the same explanation as one
    asked for; a step elsewhere overtakes the job ahead; no look-ahead for a modified input."""
    from viewer_conftest import _backend

    _backend()
    from tsviz_native.viewer.app import Viewer
    from tsviz_native.viewer.state import Variant

    model, X, y = forecaster
    v = Viewer(model, X[:30], y[:30], sample=5, size=(500, 300), show=False, threaded=True)
    try:
        v.wait()
        assert v.frame.sample == 5
        _poll_until(v, lambda: (6, "output", None) in v._frames)
        v.state.step_sample(1)  # explained ahead: swapped in at once, no job for the worker
        assert not v._pending and v.frame.sample == 6
        want = model.explain(X[6:7])
        for name in v.info.layer_names:
            assert np.array_equal(v.frame.importance(name), want.importance[name][0])
        _poll_until(v, lambda: (7, "output", None) in v._frames)
        # backwards: the look-ahead follows the step
        v.state.set(sample=20)
        v.wait()
        v.state.step_sample(-1)
        v.wait()
        assert v.frame.sample == 19
        _poll_until(v, lambda: (18, "output", None) in v._frames)
        assert (20 + 1, "output", None) not in v._frames
        # a request while a job ahead is queued or running: the request is served
        del v._frames[(18, "output", None)]
        v._explain_ahead()
        assert v._ahead is not None
        v.state.set(sample=2)
        v.wait()
        assert v.frame.sample == 2 and not v._pending
        # a modified input is not explained ahead (an attack runs PGD)
        v.state.set(variant=Variant("attack"))
        v.wait()
        for _ in range(20):
            v._poll()
        assert v._ahead is None and (1, "output", None) not in v._frames
    finally:
        v.close()
