"""Progress bars for pull, push and create, fed by the server's NDJSON
status lines (``status``, ``digest``, ``total``, ``completed``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


def show_progress(lines: Iterable[dict[str, Any]], console: Console) -> dict[str, Any]:
    """Render status lines; returns the last one. One bar per digest with a
    total, plain lines for the other statuses (repeats skipped)."""
    last: dict[str, Any] = {}
    bars: dict[str, TaskID] = {}
    previous = ""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TimeRemainingColumn(), console=console, transient=False)
    with progress:
        for item in lines:
            last = item
            status = str(item.get("status", ""))
            digest = str(item.get("digest", ""))
            total = int(item.get("total") or 0)
            if digest and total:
                if digest not in bars:
                    bars[digest] = progress.add_task(status, total=total)
                progress.update(bars[digest], completed=int(item.get("completed") or 0), description=status)
            elif status and status != previous:
                progress.console.print(status)
            previous = status
    return last
