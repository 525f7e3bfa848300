"""Turn the current theme's variables into Rich styles for text we build by hand.

Theme values can be hex colours or ANSI names (`ansi_green` in the mono theme);
Rich understands neither spelling the same way, so go through Textual's Color.
"""

from __future__ import annotations

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError


def theme_style(app: App[object], variable: str, bold: bool = False, dim: bool = False) -> Style:
    value = app.theme_variables.get(variable)
    color = None
    if value:
        try:
            color = Color.parse(value).rich_color
        except ColorParseError:
            color = None
    return Style(color=color, bold=bold or None, dim=dim or None)


def rich_style(spec: str) -> Style:
    """A style string from themes.series_styles (may hold `ansi_*` names) as a Rich Style."""
    parts = spec.split()
    color = None
    attrs: dict[str, bool] = {}
    for part in parts:
        if part in ("bold", "dim", "italic", "underline", "reverse"):
            attrs[part] = True
            continue
        try:
            color = Color.parse(part).rich_color
        except ColorParseError:
            try:
                return Style.parse(spec)
            except Exception:
                return Style()
    return Style(color=color, **attrs)
