"""Server-side chart geometry for inline SVG (no JavaScript, no chart library).

Functions here turn counts into rectangles and labels; the template draws them with
``<rect>`` and ``<text>`` so every label passes through Jinja's autoescaping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.domain.states import DeliveryStatus

#: Most bars drawn: a longer send is grouped into wider buckets.
MAX_BARS = 240
#: Status order in the breakdown bar (classes ``st-<status>`` colour them in staff.css).
STATUS_ORDER = tuple(s.value for s in DeliveryStatus)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class TimeChart:
    """Messages sent per bucket: bars, axis labels and the viewBox size."""

    width: int
    height: int
    bucket_minutes: int
    bars: list[Bar]
    x_labels: list[Label]
    y_labels: list[Label]
    total: int


@dataclass(frozen=True)
class StatusPart:
    status: str
    count: int
    x: float
    width: float


def time_chart(series: list[tuple[datetime, int]], *, width: int = 720, height: int = 220) -> TimeChart | None:
    """Bars of messages per minute (or per wider bucket when the send spans more than
    :data:`MAX_BARS` minutes), empty minutes included; None when nothing was sent."""
    if not series:
        return None
    left, right, top, bottom = 48.0, 8.0, 8.0, 28.0
    start, end = series[0][0], series[-1][0]
    span = int((end - start).total_seconds() // 60) + 1
    bucket = max(1, math.ceil(span / MAX_BARS))
    buckets = [0] * math.ceil(span / bucket)
    for at, n in series:
        buckets[int((at - start).total_seconds() // 60) // bucket] += n
    peak = max(buckets) or 1
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(buckets)
    bars = []
    for i, n in enumerate(buckets):
        h = plot_h * n / peak
        at = start + timedelta(minutes=i * bucket)
        bar_w = min(slot * 0.8, 40.0)
        x = left + i * slot + (slot - bar_w) / 2
        bars.append(Bar(x, top + plot_h - h, bar_w, h, f"{at:%H:%M} UTC: {n} sent"))
    x_labels = []
    step = max(1, len(buckets) // 6)
    for i in range(0, len(buckets), step):
        at = start + timedelta(minutes=i * bucket)
        x_labels.append(Label(left + i * slot + slot / 2, height - 8, f"{at:%H:%M}"))
    y_labels = [Label(left - 6, top + plot_h * (1 - f) + 4, str(round(peak * f))) for f in (0.0, 0.5, 1.0)]
    return TimeChart(width, height, bucket, bars, x_labels, y_labels, sum(buckets))


def status_parts(counts: dict[str, int], *, width: int = 720) -> list[StatusPart]:
    """One horizontal stacked bar of delivery counts by status, in :data:`STATUS_ORDER`."""
    total = sum(counts.values())
    if total == 0:
        return []
    parts, x = [], 0.0
    for status in STATUS_ORDER + tuple(sorted(set(counts) - set(STATUS_ORDER))):
        n = counts.get(status, 0)
        if n:
            w = width * n / total
            parts.append(StatusPart(status, n, x, w))
            x += w
    return parts
