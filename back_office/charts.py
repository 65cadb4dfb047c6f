"""Charts of the finance reports, drawn on the server as SVG with pygal (a small pure-Python charting library).

The page shows a chart as an <img> of its own URL: the page's strict CSP stays as it is (pygal puts a <style> and
a config <script> inside the SVG), the SVG's own response allows only its inline style (no script runs in an
image anyway), and the same numbers are in the table beside it for screen readers and copying.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import pygal
from pygal.style import Style

Kind = Literal["bar", "stacked", "line", "hbar"]
WIDTH, HEIGHT = 800, 340  # scaled to the page: text stays readable on a tablet
# the office's brand red, then colours told apart with any colour vision (blue, amber, grey, green)
COLOURS = ("#a61f3b", "#1f5fa6", "#d18b00", "#5c5c66", "#2e7d32", "#7b3fa0")
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"

_STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#1d1d1f", foreground_strong="#1d1d1f",
    foreground_subtle="#8e8e93", colors=COLOURS, opacity=".9", opacity_hover="1",
    font_family='system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    label_font_size=13, major_label_font_size=13, legend_font_size=14, value_font_size=12, tooltip_font_size=13,
)


class Series(msgspec.Struct, frozen=True):
    name: str
    values: list[float | None]


class Chart(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind
    labels: list[str]
    series: list[Series]
    y_title: str = ""
    counts: bool = False  # whole numbers (members, codes): no 0.5 member on the axis


_CLASSES = {"bar": pygal.Bar, "stacked": pygal.StackedBar, "line": pygal.Line, "hbar": pygal.HorizontalBar}


def svg(chart: Chart) -> bytes:
    many = len(chart.labels) > 16
    graph = _CLASSES[chart.kind](
        js=[], width=WIDTH, height=HEIGHT, style=_STYLE, legend_at_bottom=False, legend_box_size=14, truncate_legend=-1,
        x_label_rotation=0 if chart.kind == "hbar" or not many else 45, show_minor_x_labels=not many,
        x_labels_major_every=max(1, len(chart.labels) // 12) if many else None, truncate_label=-1,
        y_title=chart.y_title or None, margin=12, spacing=8, print_values=False, dots_size=2,
        show_y_guides=True, no_data_text="—", human_readable=False, value_formatter=_number,
    )
    graph.x_labels = chart.labels
    top = max((v for series in chart.series for v in series.values if v is not None), default=0)
    if chart.counts and top < 10:
        graph.y_labels = list(range(0, int(top) + 2))
    for series in chart.series:
        graph.add(series.name, series.values)
    return graph.render()  # type: ignore[no-any-return]


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}".replace(",", " ") if float(value).is_integer() else f"{value:,.2f}".replace(",", " ")
