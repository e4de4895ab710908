"""The viewer's state: plain Python, observable, independent of vispy.

Every change of a field emits one event to the callbacks connected with :meth:`ViewerState.connect`:
``callback(name, old, new)``. The views and the worker listen; nothing here draws or computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from tsviz_native import _native
from tsviz_native._native import ArgumentError

LEVELS = (1, 2, 3, 4)
SORTS = ("descending", "ascending")
WRTS = ("output", "loss")
VARIANTS = ("attack", "inverse")


@dataclass(frozen=True)
class Highlight:
    """A clicked point: ``a^l[filter, position]`` of ``tensor`` (a filter layer or the output)."""

    tensor: str
    filter: int
    position: int


@dataclass(frozen=True)
class Variant:
    """What replaces the current sample's input: its PGD attack (``kind="attack"``) or its
    inverse optimisation (``kind="inverse"``) towards the largest summed activation of
    ``filter`` of ``layer``, or of the explained output when ``layer`` is None."""

    kind: str
    layer: str | None = None
    filter: int | None = None


@dataclass
class ViewerState:
    """What the user chose: sample, level, layer, percentile, sort order, selection, highlight,
    what is explained (``wrt``: the output, or the loss against the data's targets when
    ``has_targets``) and the input shown (``variant``: None for the sample itself)."""

    n_samples: int = 1
    layers: tuple[str, ...] = ()
    sample: int = 0
    level: int = 1
    layer: str = ""
    percentile: float = 0.0
    sort: str = "descending"
    filter: int | None = None
    highlight: Highlight | None = None
    active_only: bool = False
    scroll: dict[str, int] = field(default_factory=dict)
    show_help: bool = False
    has_targets: bool = False
    wrt: str = "output"
    variant: Variant | None = None
    _listeners: list[Callable[[str, Any, Any], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.layer and self.layers:
            self.layer = self.layers[0]
        self.layer = self._layer_name(self.layer)
        self._check()

    def _layer_name(self, key: Any) -> Any:
        """The layer's name in :attr:`layers` that ``key`` gives (the name, or an index), by the
        engine's one lookup of a filter layer; ArgumentError listing the layers otherwise."""
        if not self.layers or key in self.layers:
            return key
        pairs = [(name, name) for name in self.layers]
        return self.layers[_native.find_layer(pairs, key if isinstance(key, str) else str(key))]

    def _check(self) -> None:
        """Raises :class:`tsviz_native.ArgumentError` (a ValueError) naming the bad field."""
        if self.level not in LEVELS:
            raise ArgumentError(f"level must be one of {LEVELS}, got {self.level!r}")
        if self.sort not in SORTS:
            raise ArgumentError(f"sort must be one of {SORTS}, got {self.sort!r}")
        if not isinstance(self.percentile, (int, float)) or not 0 <= self.percentile <= 100:
            raise ArgumentError(f"percentile must be in 0..100, got {self.percentile!r}")
        if not 0 <= self.sample < max(self.n_samples, 1):
            raise ArgumentError(f"sample must be in 0..{self.n_samples - 1}, got {self.sample!r}")
        if self.wrt not in WRTS:
            raise ArgumentError(f"wrt must be one of {WRTS}, got {self.wrt!r}")
        if self.wrt == "loss" and not self.has_targets:
            raise ArgumentError("explaining the loss needs the windows' targets (the y of an .npz file); "
                                "these windows have none")
        if self.variant is not None and (not isinstance(self.variant, Variant)
                                         or self.variant.kind not in VARIANTS):
            raise ArgumentError(f"variant must be None or a Variant of kind {' or '.join(VARIANTS)}, "
                                f"got {self.variant!r}")

    def connect(self, callback: Callable[[str, Any, Any], None]) -> None:
        self._listeners.append(callback)

    def set(self, **changes: Any) -> None:
        """Changes fields, validates, then emits one event per field whose value changed."""
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = set(changes) - names
        if unknown:
            raise ArgumentError(f"ViewerState has no field {', '.join(sorted(unknown))}; "
                                f"the fields are {', '.join(sorted(names))}")
        if "layer" in changes:
            changes["layer"] = self._layer_name(changes["layer"])
        old = {k: getattr(self, k) for k in changes}
        for k, v in changes.items():
            object.__setattr__(self, k, v)
        try:
            self._check()
        except ArgumentError:
            for k, v in old.items():
                object.__setattr__(self, k, v)
            raise
        for k, v in changes.items():
            if old[k] != v:
                for cb in list(self._listeners):
                    cb(k, old[k], v)

    # The user's actions, as the keys and the mouse trigger them.
    def step_sample(self, delta: int) -> None:
        """Another sample, shown as it is (an attacked or optimised input stays with its own)."""
        self.set(sample=min(max(self.sample + delta, 0), self.n_samples - 1), highlight=None,
                 variant=None)

    def toggle_wrt(self) -> None:
        """Explain the loss instead of the output, or back; ArgumentError without targets."""
        self.set(wrt="loss" if self.wrt == "output" else "output")

    def step_percentile(self, delta: float) -> None:
        self.set(percentile=float(min(max(self.percentile + delta, 0.0), 100.0)))

    def step_layer(self, delta: int) -> None:
        if self.layers:
            i = (self.layers.index(self.layer) + delta) % len(self.layers)
            self.set(layer=self.layers[i], filter=None)

    def toggle_sort(self) -> None:
        self.set(sort="ascending" if self.sort == "descending" else "descending")

    def scroll_layer(self, layer: str, delta: int, n_filters: int) -> None:
        cur = self.scroll.get(layer, 0)
        new = min(max(cur + delta, 0), max(n_filters - 1, 0))
        if new != cur:
            scroll = dict(self.scroll)
            scroll[layer] = new
            self.set(scroll=scroll, layer=layer)


# Every shortcut, for the help overlay (key ``h``) and the README.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4", "level: network, filters, one layer, clusters"),
    ("Left / Right", "previous / next sample (PageUp / PageDown: 10, Home / End: first / last)"),
    ("Up / Down", "importance percentile +10 / -10 ([ and ]: -1 / +1, 0: back to 0)"),
    ("Tab / Shift+Tab, n / p", "next / previous layer"),
    ("s", "sort filters ascending / descending"),
    ("mouse wheel", "level 2: scroll the stack under the cursor; elsewhere: zoom"),
    ("drag", "turn the 3-D view (levels 1, 2) or pan (levels 3, 4)"),
    ("click a point", "recursive highlighting: light up the points that produced it"),
    ("click the slider", "go to a sample"),
    ("a", "highlighting: toggle active_only (drop points whose contribution is 0)"),
    ("c", "clear the highlight and the selected filter"),
    ("L (Shift+l)", "explain the loss against the window's target / the output (needs targets)"),
    ("A (Shift+a)", "show the window PGD-attacked (eps: 2% of its value range); again: the original"),
    ("I (Shift+i)", "show the window optimised towards the selected filter (else the output); again: the original"),
    ("O (Shift+o)", "show the original window again"),
    ("r", "reset the camera"),
    ("h", "show / hide this help"),
    ("q / Escape", "quit"),
)
