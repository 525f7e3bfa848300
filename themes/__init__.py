"""The console's four Textual themes, and the chart colours that go with each.

Each theme's palette is written once, here: the Textual `Theme` and the Rich styles
for chart series and event markers are both read from it, so a theme never has two
copies of its colours. `app.tcss` uses only theme variables.

- `trainledger-dark` / `trainledger-light`: the everyday pair.
- `trainledger-high-contrast`: pure black and white with strong, saturated colours,
  for poor eyesight or bright rooms.
- `trainledger-mono`: the terminal's own default colours (ANSI, like Textual's
  `ansi-dark`), for a plain 16-colour SSH session or `NO_COLOR`; chart series differ
  by bold / normal / dim / underline, not by hue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol

from textual.theme import Theme

__all__ = [
    "CSS_PATH",
    "DEFAULT_THEME",
    "MONO_THEME",
    "THEMES",
    "choose_theme",
    "few_colours",
    "marker_styles",
    "register_themes",
    "series_styles",
]

CSS_PATH: Path = Path(__file__).with_name("app.tcss")
DEFAULT_THEME = "trainledger-dark"
MONO_THEME = "trainledger-mono"
MARKER_KINDS = ("best", "phase", "early_stop", "other")


@dataclass(frozen=True)
class _Palette:
    """A theme and its chart styles (Rich style strings), kept side by side."""

    theme: Theme
    series: tuple[str, ...]
    markers: dict[str, str] = field(default_factory=dict)


_DARK = _Palette(
    Theme(
        name="trainledger-dark",
        primary="#4ea1ff",
        secondary="#7d8ce8",
        accent="#ffb454",
        warning="#ffb454",
        error="#f0646e",
        success="#5fd07c",
        foreground="#dfe3ea",
        background="#111418",
        surface="#181c22",
        panel="#222831",
        dark=True,
        variables={"footer-key-foreground": "#4ea1ff", "border-blurred": "#333b47"},
    ),
    series=("#4ea1ff", "#ffb454", "#5fd07c", "#e17bd9", "#45d0d0", "#e8d168", "#f0646e", "#b7bdc8"),
    markers={
        "best": "bold #5fd07c",
        "phase": "#ffb454",
        "early_stop": "bold #f0646e",
        "other": "#8a93a3",
    },
)

_LIGHT = _Palette(
    Theme(
        name="trainledger-light",
        primary="#0b5cad",
        secondary="#4c56b8",
        accent="#b35900",
        warning="#a15c00",
        error="#c0293b",
        success="#1e7d3a",
        foreground="#1d2128",
        background="#f7f8fa",
        surface="#eceef2",
        panel="#dde1e8",
        dark=False,
        variables={"footer-key-foreground": "#0b5cad", "border-blurred": "#c3c8d1"},
    ),
    series=("#0b5cad", "#c25e00", "#1e7d3a", "#a0269b", "#007f86", "#7a6500", "#c0293b", "#4b5260"),
    markers={
        "best": "bold #1e7d3a",
        "phase": "#b35900",
        "early_stop": "bold #c0293b",
        "other": "#5c6370",
    },
)

_HIGH_CONTRAST = _Palette(
    Theme(
        name="trainledger-high-contrast",
        primary="#ffff00",
        secondary="#00ffff",
        accent="#00ffff",
        warning="#ffaa00",
        error="#ff4040",
        success="#00ff00",
        foreground="#ffffff",
        background="#000000",
        surface="#000000",
        panel="#000000",
        boost="#ffffff",
        dark=True,
        text_alpha=1.0,
        variables={
            "text-muted": "#e0e0e0",  # muted text stays readable
            "border": "#ffffff",
            "border-blurred": "#ffffff",
            "footer-key-foreground": "#ffff00",
            "block-cursor-background": "#ffff00",
            "block-cursor-foreground": "#000000",
            "input-selection-background": "#00ffff",
            "input-selection-foreground": "#000000",
            "screen-selection-background": "#ffff00",
            "screen-selection-foreground": "#000000",
        },
    ),
    series=(
        "bold #ffff00",
        "bold #00ffff",
        "bold #ff66ff",
        "bold #00ff00",
        "bold #ffffff",
        "bold #ff9900",
        "bold #ff4040",
    ),
    markers={
        "best": "bold #00ff00",
        "phase": "bold #ffff00",
        "early_stop": "bold #ff4040",
        "other": "bold #ffffff",
    },
)

_MONO = _Palette(
    Theme(
        name="trainledger-mono",
        ansi=True,
        primary="ansi_bright_white",
        secondary="ansi_white",
        accent="ansi_bright_white",
        warning="ansi_bright_white",
        error="ansi_bright_white",
        success="ansi_white",
        foreground="ansi_default",
        background="ansi_default",
        surface="ansi_default",
        panel="ansi_default",
        boost="ansi_default",
        dark=True,
        variables={
            # Textual's own widgets (Button, the screen's scrollbars) read these two.
            "ansi-background": "ansi_black",
            "ansi-foreground": "ansi_white",
            "border": "ansi_white",
            "border-blurred": "ansi_white",
            "footer-key-foreground": "ansi_bright_white",
            "block-cursor-background": "ansi_white",
            "block-cursor-foreground": "ansi_black",
            "input-cursor-background": "ansi_white",
            "input-cursor-foreground": "ansi_black",
            "input-selection-background": "ansi_white",
            "input-selection-foreground": "ansi_black",
            "screen-selection-background": "ansi_white",
            "screen-selection-foreground": "ansi_black",
            "scrollbar": "ansi_white",
            "scrollbar-hover": "ansi_bright_white",
            "scrollbar-active": "ansi_bright_white",
            "link-color": "ansi_default",
            "link-color-hover": "ansi_bright_white",
        },
    ),
    # "default" is the terminal's own foreground, readable on dark and light terminals;
    # the series differ by weight and decoration, so they survive NO_COLOR.
    series=("bold", "default", "dim", "bold underline", "underline", "dim underline", "reverse"),
    markers={"best": "bold", "phase": "default", "early_stop": "bold reverse", "other": "dim"},
)

_PALETTES: dict[str, _Palette] = {p.theme.name: p for p in (_DARK, _LIGHT, _HIGH_CONTRAST, _MONO)}
THEMES: dict[str, Theme] = {name: p.theme for name, p in _PALETTES.items()}


class _ThemedApp(Protocol):
    def register_theme(self, theme: Theme) -> None: ...


def register_themes(app: _ThemedApp) -> None:
    """Register all four themes with a Textual app (then set `app.theme`)."""
    for theme in THEMES.values():
        app.register_theme(theme)


def choose_theme(requested: str | None, environ: Mapping[str, str]) -> str:
    """The theme to start with: the requested one, else mono under NO_COLOR or in a
    16-colour terminal, else dark.

    NO_COLOR counts when present with any value (no-color.org). Call this before the
    `App` is constructed: Textual's `App.__init__` removes NO_COLOR from `os.environ`.
    Raises ValueError naming the valid themes when `requested` is not one of them.
    """
    if requested:
        if requested not in THEMES:
            valid = ", ".join(THEMES)
            raise ValueError(f"unknown theme {requested!r}; choose one of: {valid}")
        return requested
    if "NO_COLOR" in environ or few_colours(environ):
        return MONO_THEME
    return DEFAULT_THEME


def few_colours(environ: Mapping[str, str]) -> bool:
    """Whether the terminal shows only the 8/16 ANSI colours (TERM=xterm, screen, linux).

    There the dark theme's greys all map to ANSI black and its separators vanish into the
    background; the mono theme uses the terminal's own colours instead. The rules are
    Rich's (which Textual renders through): COLORTERM=truecolor/24bit, or a TERM ending
    in -256color, means more colours; TEXTUAL_COLOR_SYSTEM overrides both. No TERM at
    all (not a terminal, or Windows) keeps the default.
    """
    system = environ.get("TEXTUAL_COLOR_SYSTEM", "").strip().lower()
    if system and system != "auto":
        return system in ("standard", "windows")
    if environ.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return False
    term = environ.get("TERM", "").strip().lower()
    if not term:
        return False
    return term.rsplit("-", 1)[-1] not in ("256color", "truecolor", "24bit", "direct")


def series_styles(theme_name: str) -> list[str]:
    """Rich style strings for chart series, in the order runs are given colours.

    Unknown names (e.g. a built-in Textual theme picked from the palette) get the
    styles of the dark or light theme, whichever matches the theme's name best.
    """
    return list(_palette(theme_name).series)


def marker_styles(theme_name: str) -> dict[str, str]:
    """Rich style strings for chart event markers: best, phase, early_stop, other."""
    return dict(_palette(theme_name).markers)


def _palette(theme_name: str) -> _Palette:
    palette = _PALETTES.get(theme_name)
    if palette is not None:
        return palette
    if "ansi" in theme_name:
        return _MONO
    return _LIGHT if "light" in theme_name else _DARK
