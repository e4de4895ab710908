"""The scene of one view: :func:`build` turns one explained sample (a
:class:`~.frame.Frame`) and the :class:`~.state.ViewerState` into the
:class:`~.geometry.Geometry` of the chosen level, as plain numpy arrays (no vispy, no GL).

Each level draws in its own module: :mod:`.level1` (the network), :mod:`.level2` (the filters),
:mod:`.level3` (one layer; level 4 adds its clusters).
"""

from __future__ import annotations

from . import level1, level2, level3
from .frame import Frame, ModelInfo
from .geometry import Geometry
from .state import ViewerState

LEVELS = {1: level1.build, 2: level2.build, 3: level3.build, 4: level3.build_clusters}


def build(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """The geometry of ``state.level`` for one explained sample."""
    return LEVELS[state.level](frame, info, state)
