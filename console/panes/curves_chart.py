"""The Curves pane's chart keys: the grid of small charts, the cursor, zoom and CSV export.

A mixin of CurvesPane (so `self` is the pane); its bindings are CHART_BINDINGS, added to the pane's.
"""

from __future__ import annotations

from textual.binding import Binding

CHART_BINDINGS: list[Binding] = []


class ChartKeys:
    """The actions behind CHART_BINDINGS."""
