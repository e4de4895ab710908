"""``tsviz view`` and ``tsviz render``: registered by the CLI without importing vispy."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Adds the viewer's subcommands to the ``tsviz`` parser."""
