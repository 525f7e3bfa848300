"""The Capture pane's right-hand (or lower) side: one session's live picture.

frames/s over time, accepted vs rejected by reason, latency_us percentiles, and the newest
frame (the 128-d input as shaded cells, gesture_probs and camera_scores as bars). `show()`
re-renders only when something it draws changed, so a 1 Hz stats tick or a scan of another
session costs a tuple comparison.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from trainledger.console.styles import theme_style
from trainledger.console.text import clean
from trainledger.console.widgets.capture_render import (
    bars,
    column_chart,
    input_strip,
    micros,
    newest_frame_facts,
    reasons_text,
)
from trainledger.engines.capture.live import SessionCounts
from trainledger.engines.capture.sessions import FPS_WINDOW, SessionSummary

SIDE_BY_SIDE_MIN = 70  # inner width from which rejects and latency may sit side by side


class CaptureDetail(VerticalScroll):
    """Static blocks, each updated only when the session, the stats or the size changed.

    Not focusable: the sessions table keeps the keys (a focusable scroller here would pull
    the focus, and with it the tab, back to Capture when another pane is chosen)."""

    can_focus = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key: tuple[Any, ...] | None = None
        self._args: tuple[Any, ...] | None = None

    def on_resize(self) -> None:
        """Widths and the chart height follow this widget's own size, not the pane's."""
        if self._args is not None:
            self._key = None
            self.show(*self._args)

    def compose(self) -> ComposeResult:
        yield Static("", id="cap-fps", classes="cap-block")
        with Horizontal(id="cap-mid"):
            yield Static("", id="cap-rejects")
            yield Static("", id="cap-latency")
        yield Static("", id="cap-frame", classes="cap-block")
        with Horizontal(id="cap-bars"):
            yield Static("", id="cap-gestures")
            yield Static("", id="cap-cameras")

    def forget(self) -> None:
        """Draw again on the next show() (a theme or size change)."""
        self._key = None

    def show(
        self,
        s: SessionSummary | None,
        fps_src: tuple[int, ...] | None,
        counts: SessionCounts | None,
        empty: str,
    ) -> None:
        """`counts`: this session's counts and reasons, its file's and the running server's."""
        self._args = (s, fps_src, counts, empty)
        width = self.size.width or 60
        chart_h = max(1, min(12, self.size.height - 21))
        key = (s.id if s else None, s.version if s else None, fps_src, width, chart_h,
               counts, empty if s is None else None)  # fmt: skip
        if key == self._key:
            return
        self._key = key
        fps_w, rej_w = (
            self.query_one("#cap-fps", Static),
            self.query_one("#cap-rejects", Static),
        )
        lat_w, frame_w = (
            self.query_one("#cap-latency", Static),
            self.query_one("#cap-frame", Static),
        )
        ges_w, cam_w = (
            self.query_one("#cap-gestures", Static),
            self.query_one("#cap-cameras", Static),
        )
        muted = theme_style(self.app, "text-muted")
        accent = theme_style(self.app, "primary")
        warn = theme_style(self.app, "warning")
        inner = max(20, width - 2)
        if s is None or counts is None:
            fps_w.update(Text(empty, style=muted))
            for w in (rej_w, lat_w, frame_w, ges_w, cam_w):
                w.update("")
            return
        title = Text()
        title.append(clean(s.id), style="bold")
        if fps_src is not None:
            title.append(
                f"  frames/s, server (all sessions), last {FPS_WINDOW} s", style=muted
            )
            series: tuple[int, ...] = fps_src
        else:
            title.append(
                f"  frames/s by the frames' ts, last {FPS_WINDOW} s", style=muted
            )
            series = s.fps
        title.append(f"  peak {max(series, default=0):,}", style=muted)
        span = min(inner, FPS_WINDOW)
        series = (0,) * max(0, span - len(series)) + tuple(
            series[-span:]
        )  # newest at the right
        fps_w.update(
            Text.assemble(title, "\n", column_chart(series, inner, chart_h, accent))
        )
        rows = [r for r in counts.reasons if r[0] == "file"][:4]
        rows += [r for r in counts.reasons if r[0] == "server"][:3]
        head = Text(f"accepted {counts.frames:,} · rejected {counts.rejected:,}\n", style="bold")
        if counts.on_disk:
            head.append(f"file: {counts.frames:,} frames · {counts.file_rejected:,} bad lines\n", style=muted)
        if counts.server is not None:
            head.append(f"server, this session: {counts.server.accepted:,} accepted · "
                        f"{counts.server.rejected:,} rejected\n", style=muted)  # fmt: skip
        lat = Text("latency_us\n", style="bold")
        if s.latency is not None:
            p50, p95, p99 = s.latency
            lat.append(f"p50 {micros(p50)}  p95 {micros(p95)}  p99 {micros(p99)}")
        else:
            lat.append("no frames yet", style=muted)
        # Side by side only where each half holds its lines whole: a wrapped line would run
        # down beside the other block and read as one text with it (80 columns: stacked).
        half = inner // 2 - 2
        longest = max(len(line) for line in (*head.plain.splitlines(), *lat.plain.splitlines()))
        side_by_side = inner >= SIDE_BY_SIDE_MIN and longest <= half
        rej_w.update(Text.assemble(head, reasons_text(rows, half if side_by_side else inner, warn, muted)))
        lat_w.update(lat)
        self.query_one("#cap-mid").styles.layout = (
            "horizontal" if side_by_side else "vertical"
        )
        frame = s.newest
        if frame is None:
            frame_w.update(Text("no good frame yet", style=muted))
            ges_w.update("")
            cam_w.update("")
            return
        per_row = 64 if inner >= 64 else 32
        head = Text(f"newest frame: {newest_frame_facts(frame)}\n", style="bold")
        head.append(f"input (128 values, −1 ▁ … █ +1, {per_row} a row)\n", style=muted)
        frame_w.update(
            Text.assemble(head, input_strip(frame["input"], per_row, accent))
        )
        bar_w = max(6, min(30, (inner // 2) - 12))
        ges_w.update(Text.assemble(Text("gesture_probs\n", style="bold"),
                                   bars("g", frame["gesture_probs"], bar_w, accent, muted)))  # fmt: skip
        cam_w.update(Text.assemble(Text("camera_scores\n", style="bold"),
                                   bars("c", frame["camera_scores"], bar_w, accent, muted)))  # fmt: skip
