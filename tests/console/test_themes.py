"""Themes: the choice rules, registration in a real App, and that app.tcss parses."""

from __future__ import annotations

import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.widgets import Button, DataTable, Footer, Input, Label, Static, TabbedContent, TabPane

from trainledger.themes import (
    CSS_PATH,
    THEMES,
    choose_theme,
    marker_styles,
    register_themes,
    series_styles,
)

NAMES = ["trainledger-dark", "trainledger-light", "trainledger-high-contrast", "trainledger-mono"]


def test_four_themes() -> None:
    assert sorted(THEMES) == sorted(NAMES)
    assert all(THEMES[name].name == name for name in NAMES)
    mono = THEMES["trainledger-mono"]
    assert mono.ansi and mono.foreground == "ansi_default"
    hc = THEMES["trainledger-high-contrast"]
    assert (hc.background, hc.foreground) == ("#000000", "#ffffff")


@pytest.mark.parametrize(
    "requested,environ,expected",
    [
        (None, {}, "trainledger-dark"),
        ("", {"TERM": "xterm-256color"}, "trainledger-dark"),
        (None, {"TERM": "xterm"}, "trainledger-mono"),  # 16 colours: the dark greys go black
        (None, {"TERM": "screen"}, "trainledger-mono"),
        (None, {"TERM": "linux"}, "trainledger-mono"),
        (None, {"TERM": "xterm", "COLORTERM": "truecolor"}, "trainledger-dark"),
        (None, {"TERM": "xterm", "TEXTUAL_COLOR_SYSTEM": "truecolor"}, "trainledger-dark"),
        (None, {"TERM": "xterm-256color", "TEXTUAL_COLOR_SYSTEM": "standard"}, "trainledger-mono"),
        ("trainledger-dark", {"TERM": "xterm"}, "trainledger-dark"),  # explicit wins
        (None, {"NO_COLOR": "1"}, "trainledger-mono"),
        (None, {"NO_COLOR": ""}, "trainledger-mono"),  # any value counts, even empty
        ("trainledger-light", {"NO_COLOR": "1"}, "trainledger-light"),  # explicit wins
        ("trainledger-high-contrast", {}, "trainledger-high-contrast"),
    ],
)
def test_choose_theme(requested: str | None, environ: dict[str, str], expected: str) -> None:
    assert choose_theme(requested, environ) == expected


def test_unknown_theme_names_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        choose_theme("solarized", {})
    for name in NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_chart_styles_parse(name: str) -> None:
    styles = series_styles(name)
    assert len(styles) >= 6
    assert len(set(styles)) == len(styles)
    parsed = [Style.parse(s) for s in styles]
    assert len(set(parsed)) == len(parsed)
    markers = marker_styles(name)
    assert set(markers) == {"best", "phase", "early_stop", "other"}
    for s in markers.values():
        Style.parse(s)


def test_mono_series_differ_without_colour() -> None:
    attrs = set()
    for s in series_styles("trainledger-mono"):
        st = Style.parse(s)
        assert st.color is None or st.color.is_default
        attrs.add((st.bold, st.dim, st.underline, st.reverse))
    assert len(attrs) >= 6


def test_unknown_theme_still_has_chart_styles() -> None:
    assert series_styles("textual-light") == series_styles("trainledger-light")
    assert series_styles("nord") == series_styles("trainledger-dark")


class _ThemedApp(App[None]):
    CSS_PATH = CSS_PATH

    def compose(self) -> ComposeResult:
        # Textual's own widgets too: an ANSI theme must define what they read ($ansi-background).
        with TabbedContent():
            with TabPane("widgets"):
                yield Button("ok")
                yield Input("text")
                yield DataTable()
        yield Footer()
        with Vertical(classes="pane"):
            yield Static("Curves", classes="pane-title")
            yield Static("", classes="chart-header")
            with Vertical(classes="empty-wrap"):
                with Vertical(classes="empty-state"):
                    yield Label("No runs yet. Start one with")
                    yield Label("trainledger demo", classes="command")
            yield Static("running", classes="status-running")
            yield Static("finished", classes="status-finished")
            yield Static("stopped", classes="status-stopped")
            yield Static("failed", classes="status-failed")
            yield Static("lost", classes="status-lost")
            yield Static("", classes="chart-footer")
            yield Static("press ? for help", classes="hint")

    def on_mount(self) -> None:
        register_themes(self)


async def test_themes_register_and_tcss_applies_in_every_theme() -> None:
    app = _ThemedApp()
    async with app.run_test(size=(80, 24)) as pilot:
        for name in NAMES:
            assert name in app.available_themes
            app.theme = name
            await pilot.pause()
            assert app.current_theme.name == name
            assert f"-theme-{name}" in app.classes
            command = app.screen.query_one(".command", Label)
            assert command.styles.color == Color.parse(app.theme_variables["accent"])
            assert command.styles.text_style.bold
            failed = app.screen.query_one(".status-failed", Static)
            assert failed.styles.text_style.bold
            assert bool(failed.styles.text_style.reverse) is (name == "trainledger-mono")


def test_tcss_uses_theme_variables_only() -> None:
    import re

    text = CSS_PATH.read_text()
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b", text)
    assert not re.search(r"\b(rgb|hsl)a?\(", text)
    for name in ("red", "green", "blue", "yellow", "white", "black", "ansi_"):
        assert not re.search(rf":\s*[^;]*\b{name}\b", text), name
