"""The stuck-runner watchdog.

A runner that has requests in flight sends a frame at least once a second
while its engine finishes decode steps (tokens, or ``Progress`` while a
long prompt is evaluated). If none comes for ``timeout`` seconds the
process is stopped (SIGSTOP, a livelock in native code, a swap storm): its
requests end with a clear error instead of waiting forever, and the
scheduler, which forgets a runner whose process ended, starts a new one for
the next request. ``PYLLAMA_RUNNER_WATCHDOG`` sets the timeout (a Go
duration or seconds; 0 turns the watchdog off).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from pyllama.keep_alive import KeepAliveError, format_duration, parse_env_keep_alive
from pyllama.runner.client import RunnerClient

log = logging.getLogger("pyllama.runner")

# The longest a healthy runner should go without finishing a decode step. The slowest step is a
# full prompt batch (512 tokens) on CPU: SmolLM2-135M took ~57 s for one on a busy 2-core machine,
# and the cost grows with parameters, so a 70B model needs minutes. See docs/scheduler.md.
DEFAULT_TIMEOUT = 600.0


def watchdog_timeout(text: str) -> float:
    """PYLLAMA_RUNNER_WATCHDOG in seconds: empty -> the default; 0 or negative -> off (inf)."""
    if not text.strip():
        return DEFAULT_TIMEOUT
    try:
        seconds = parse_env_keep_alive(text)
    except KeepAliveError:
        log.warning("ignoring PYLLAMA_RUNNER_WATCHDOG=%r (not a duration); using %gs", text, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT
    return math.inf if seconds <= 0 or math.isinf(seconds) else seconds


def stalled_for(client: RunnerClient, now: float | None = None) -> float:
    """Seconds the runner has had work without sending anything (0 when it has none)."""
    if not client.in_flight:
        return 0.0
    return (time.monotonic() if now is None else now) - client.last_progress


async def watch(client: RunnerClient, timeout: float, name: str) -> None:
    """Until the runner goes away: stop it once it stalls for ``timeout`` seconds."""
    if math.isinf(timeout):
        return
    interval = min(max(timeout / 4, 0.05), 5.0)
    while client.alive:
        await asyncio.sleep(interval)
        stalled = stalled_for(client)
        if client.alive and stalled >= timeout:
            reason = (f"the model runner for {name} made no progress for {format_duration(round(stalled))} "
                      f"and was stopped (PYLLAMA_RUNNER_WATCHDOG={format_duration(timeout)})")
            log.error("runner %d: %s", client.pid, reason)
            await client.abort(reason)
            return
