"""For the /metrics and API-key tests: run `pyllama serve` as a user does, and read /metrics the way
Prometheus would (prometheus_client's own text parser)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serverutil import _stop, clean_env, free_port, wait_http

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str, **headers: str) -> Samples:
    """Every sample of ``/metrics``, keyed by (sample name, labels)."""
    response = httpx.get(base + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled series that has not appeared yet (Prometheus' reading too)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@dataclass
class Served:
    """A `pyllama serve` process: its URL, and its output once it has stopped."""

    base: str
    proc: subprocess.Popen[bytes]
    output: str = ""

    def runner_pids(self) -> list[int]:
        """The runner processes it started (its children)."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]


@contextmanager
def pyllama_serve(env: Mapping[str, str], *flags: str, host: str = "127.0.0.1") -> Iterator[Served]:
    """Run `pyllama serve FLAGS` as a user would (PYLLAMA_HOST on a free port unless ``flags`` set
    --host); ``output`` is filled in when it has stopped."""
    port = free_port()
    full_env = clean_env(PYLLAMA_HOST=f"{host}:{port}", PYLLAMA_NUM_THREADS="1", **env)
    proc = subprocess.Popen([sys.executable, "-m", "pyllama", "serve", *flags], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", proc)
    try:
        wait_http(served.base + "/", proc)
        yield served
    finally:
        _stop(proc)
        served.output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
