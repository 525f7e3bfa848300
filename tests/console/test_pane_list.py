"""A new pane is one widget plus one entry in TrainledgerApp.PANES: tabs, keys, help, palette."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding
from textual.command import CommandPalette
from textual.widget import Widget
from textual.widgets import Static, TabbedContent, Tabs

from tests.console.conftest import settle
from trainledger.console.app import TrainledgerApp
from trainledger.console.messages import RegistryChanged
from trainledger.console.panes.base import Pane, PaneEntry
from trainledger.console.screens.help import HelpScreen
from trainledger.engines.workspace import Workspace


class ExtraPane(Widget):
    """A throw-away pane that follows the protocol and nothing more."""

    WANTS = (RegistryChanged,)
    BINDINGS: ClassVar[list[Binding]] = [Binding("z", "zap", "Zap the extra pane", id="extra.zap")]
    can_focus = True

    def __init__(self) -> None:
        super().__init__()
        self.zapped = 0
        self.restyled = 0

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("extra")

    def action_zap(self) -> None:
        self.zapped += 1

    def restyle(self) -> None:
        self.restyled += 1

    def summary(self) -> str:
        return f"extra: zapped {self.zapped}"


class WithExtra(TrainledgerApp):
    PANES = [*TrainledgerApp.PANES, PaneEntry("extra", "Extra", ExtraPane, lambda app: ExtraPane())]


async def test_a_pane_added_through_the_list_alone(frozen_ws: Workspace) -> None:
    app = WithExtra(frozen_ws, watch=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        tabs = app.query_one(Tabs)
        assert "5 Extra" in [str(t.label) for t in tabs.query("Tab")]
        await pilot.press("5")  # its number key comes from its place in the list
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "extra"
        extra = app.query_one(ExtraPane)
        assert isinstance(extra, Pane)
        await pilot.press("z")
        assert extra.zapped == 1
        # subscribed to what it wants, restyled with the others, in the headless summary
        assert any(t is extra and types == (RegistryChanged,) for t, types in app.watcher._subscribers)  # noqa: SLF001
        app.theme = "trainledger-light"
        await pilot.pause()
        assert extra.restyled >= 1
        assert "extra: zapped 1" in app.headless_summary()
        # the help screen lists its keys under its title
        rows = app.help_rows()
        assert ("Extra", "z", "Zap the extra pane") in rows
        assert any(key == "5" and does == "Extra" for _, key, does in rows)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        # and the palette offers its action and a way to show it
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Extra: Zap the extra pane" in commands and "Show Extra" in commands
        app.action_command_palette()
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
