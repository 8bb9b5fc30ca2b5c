"""Human-readable sizes, ages and tables the way Ollama's CLI prints them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone


def human_bytes(n: int | float) -> str:
    """Decimal units, as Ollama: 98 MB, 1.3 GB."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def _span(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} second{'s' if s != 1 else ''}"
    if s < 120:
        return "About a minute"
    if s < 3600:
        return f"{s // 60} minutes"
    if s < 7200:
        return "About an hour"
    if s < 86400 * 2:
        return f"{s // 3600} hours"
    if s < 86400 * 14:
        return f"{s // 86400} days"
    if s < 86400 * 60:
        return f"{s // (86400 * 7)} weeks"
    if s < 86400 * 730:
        return f"{s // (86400 * 30)} months"
    return f"{s // (86400 * 365)} years"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def human_age(timestamp: str, now: datetime | None = None) -> str:
    """`3 minutes ago` for a past RFC 3339 time."""
    now = now or datetime.now(timezone.utc)
    return f"{_span((now - parse_time(timestamp)).total_seconds())} ago"


def human_until(timestamp: str, now: datetime | None = None) -> str:
    """`4 minutes from now`, `Forever` for far futures, `Stopping...` when past."""
    now = now or datetime.now(timezone.utc)
    when = parse_time(timestamp)
    seconds = (when - now).total_seconds()
    if when.year > 2200 or seconds > 86400 * 365 * 100:
        return "Forever"
    if seconds <= 0:
        return "Stopping..."
    return f"{_span(seconds)} from now"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], gap: int = 4) -> str:
    """Left-aligned columns separated by `gap` spaces (no trailing spaces)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(widths[i] + gap) if i < len(row) - 1 else str(c) for i, c in enumerate(row)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)
