"""Server-side SVG chart geometry (the templates draw it; no chart library, no CDN)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, BAR_HEIGHT, GAP, LABEL_WIDTH = 520, 22, 8, 110


@dataclass(frozen=True, kw_only=True)
class Bar:
    label: str
    value: float
    y: int
    width: float


def bars(items: list[tuple[str, float]]) -> list[Bar]:
    """Horizontal bars scaled to the largest value."""
    top = max((value for _, value in items), default=0) or 1
    room = WIDTH - LABEL_WIDTH - 70
    return [Bar(label=label, value=value, y=i * (BAR_HEIGHT + GAP), width=room * value / top)
            for i, (label, value) in enumerate(items)]


def polyline(points: list[dict[str, Any]], key: str, *, height: int = 140) -> str:
    """``x,y`` pairs of one series of a timeline (``[{"at": ..., key: n}, ...]``)."""
    if not points:
        return ""
    top = max(float(p.get(k) or 0) for p in points for k in ("sent", "opened", "clicked")) or 1
    step = (WIDTH - 20) / max(len(points) - 1, 1)
    scale = (height - 20) / top
    return " ".join(f"{10 + i * step:.1f},{height - 10 - scale * float(p.get(key) or 0):.1f}"
                    for i, p in enumerate(points))
