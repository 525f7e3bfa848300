"""The one confirmation screen: Cancel has the focus, y confirms, type-to-confirm, plain text."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Button, Input, Static

from trainledger.console.screens.confirm import Confirmation, ConfirmScreen

ASK = Confirmation(
    title="Promote lora-lm?",
    action="Promote",
    change=("active v1", "active v2 (canary 10 % → 100 %)"),
    details="sha256 9f2c…e1 verified\nsanity: 4 of 4 checks passed",
)


class _Host(App[None]):
    def __init__(self, ask: Confirmation) -> None:
        super().__init__()
        self.ask = ask
        self.answers: list[bool | None] = []

    def compose(self) -> ComposeResult:
        yield Static("host")

    def on_mount(self) -> None:
        self.push_screen(ConfirmScreen(self.ask), self.answers.append)


async def _answer(ask: Confirmation, *keys: str) -> list[bool | None]:
    app = _Host(ask)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
    return app.answers


async def test_focus_starts_on_cancel_and_enter_cancels() -> None:
    app = _Host(ASK)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "confirm-cancel"
        await pilot.press("enter")
        await pilot.pause()
    assert app.answers == [False]


@pytest.mark.parametrize(
    "keys,expected",
    [(("y",), [True]), (("n",), [False]), (("escape",), [False]),
     (("tab", "enter"), [True]), (("tab", "tab", "enter"), [False])],
)  # fmt: skip
async def test_keys(keys: tuple[str, ...], expected: list[bool]) -> None:
    assert await _answer(ASK, *keys) == expected


async def test_type_to_confirm_needs_the_exact_name() -> None:
    ask = Confirmation("Roll back lora-lm?", "Roll back", ("v2", "v1"), type_to_confirm="lora-lm")
    app = _Host(ask)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        ok = app.screen.query_one("#confirm-ok", Button)
        assert ok.disabled
        assert app.focused is not None and app.focused.id == "confirm-cancel"  # not the box
        await pilot.press("y")  # refused: the name is not typed yet, so the y is typed into the box
        await pilot.pause()
        box = app.screen.query_one("#confirm-typed", Input)
        assert app.answers == [] and box.value == "y" and box.has_focus
        box.value = ""
        await pilot.click("#confirm-typed")
        await pilot.press(*"lora-l", "enter")  # Enter in the box never confirms
        await pilot.pause()
        assert ok.disabled and app.answers == []
        await pilot.press("m", "x")
        await pilot.pause()
        assert ok.disabled  # "lora-lmx" is not the name
        await pilot.press("backspace", "tab")
        await pilot.pause()
        assert not ok.disabled
        await pilot.press("tab", "enter")  # Cancel, then the confirm button
        await pilot.pause()
    assert app.answers == [True]


async def test_every_text_is_plain() -> None:
    hostile = Confirmation("[/]stop \x1b]2;x\x07?", "[bold]go", ("[red]a", "[/]b"), "[link=x]y")
    app = _Host(hostile)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        title = app.screen.query_one("#confirm-title", Static)
        assert "[/]stop ␛]2;x␇?" in str(title.content)
        assert app.screen.query_one("#confirm-ok", Button).label.plain == "[bold]go"


def test_snapshot_80x24(snap_compare) -> None:
    async def nothing(pilot) -> None:
        await pilot.pause()

    assert snap_compare(_Host(ASK), terminal_size=(80, 24), run_before=nothing)


def test_snapshot_type_to_confirm_80x24(snap_compare) -> None:
    ask = Confirmation("Roll back lora-lm?", "Roll back", ("active v2", "active v1"),
                       "v1 sha256 4be1…07 verified", type_to_confirm="lora-lm")  # fmt: skip

    async def typed(pilot) -> None:
        await pilot.click("#confirm-typed")
        await pilot.press(*"lora-lm")
        await pilot.pause()

    assert snap_compare(_Host(ask), terminal_size=(80, 24), run_before=typed)
