"""Prometheus ``/metrics``: what the server and its runners are doing.

Three sources, none of them on the decode path:

* an ASGI wrapper times every HTTP request and counts it by route template,
  method and status;
* the scheduler's observer hooks (``pyllama.observer``): loads, 503s, runner
  deaths, each request's first chunk and final event (token counts and
  timings the runner already sends in ``Done``);
* at scrape time, the scheduler's state: queue depth, models loaded, slots
  busy and the KV cache cells each runner reported in its last Progress
  frame (sent at most once a second while it works, and once when it goes
  idle).

Each app has its own registry, so several apps in one process (tests) do
not share counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from litestar import Request, Response, get
from litestar.datastructures import State
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pyllama.config import Config
from pyllama.engine.types import Done, Embeddings, Event, Failure
from pyllama.observer import SchedulerObserver
from pyllama.scheduler import Scheduler
from pyllama.server.guard import ASGIApp, Message, Receive, Scope, Send, is_loopback_bind

disable_created_metrics()  # the *_created series double the output and no dashboard reads them

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SPEED_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
UNMATCHED = "unmatched"  # paths no route knows: one label, not one series per scanned URL


def metrics_enabled(config: Config, keys_enabled: bool) -> bool:
    """PYLLAMA_METRICS when set; else on, unless the server listens on a public address without keys."""
    if config.metrics is not None:
        return config.metrics
    return keys_enabled or is_loopback_bind(config.host)


class Metrics(SchedulerObserver):
    """The app's metrics; the scheduler reports to it, the ASGI wrapper feeds it."""

    def __init__(self, scheduler: Callable[[], Scheduler | None]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pyllama_http_requests", "HTTP requests answered, by route template, method and "
                                "status", ["route", "method", "status"], registry=r)
        self.latency = Histogram("pyllama_http_request_duration_seconds", "Time from a request's arrival to the end "
                                 "of its response (streams included)", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("pyllama_time_to_first_token_seconds", "Time from scheduling a completion (model load "
                              "and queueing included) to its first generated tokens", ["model"],
                              buckets=TTFT_BUCKETS, registry=r)
        self.prompt_tokens = Counter("pyllama_prompt_tokens", "Prompt tokens evaluated (cached prefix not counted), "
                                     "completions and embeddings", ["model"], registry=r)
        self.generated_tokens = Counter("pyllama_generation_tokens", "Tokens generated", ["model"], registry=r)
        self.speed = Histogram("pyllama_generation_tokens_per_second", "Decode speed of each completion "
                               "(eval_count / eval_duration)", ["model"], buckets=SPEED_BUCKETS, registry=r)
        self.requests_done = Counter("pyllama_model_requests", "Completions and embedding requests that ended, by "
                                     "outcome (done, or the failure kind)", ["model", "outcome"], registry=r)
        self.rejected = Counter("pyllama_queue_rejections", "Requests refused with 503 because PYLLAMA_MAX_QUEUE "
                                "requests were already waiting", registry=r)
        self.restarts = Counter("pyllama_runner_restarts", "Runners that stopped on their own (crash, watchdog); "
                                "the next request starts a new one", ["model"], registry=r)
        self.loads = Counter("pyllama_model_loads", "Runner starts, by result (ok, error)", ["model", "result"],
                             registry=r)
        self.load_seconds = Histogram("pyllama_model_load_duration_seconds", "Time to start a runner and load the "
                                      "model into it", ["model"], buckets=LOAD_BUCKETS, registry=r)
        r.register(SchedulerCollector(scheduler))

    # ---- the scheduler's hooks -----------------------------------------------------------

    def model_loaded(self, model: str, seconds: float, ok: bool) -> None:
        self.loads.labels(model, "ok" if ok else "error").inc()
        if ok:
            self.load_seconds.labels(model).observe(seconds)

    def queue_full(self) -> None:
        self.rejected.inc()

    def runner_exited(self, model: str) -> None:
        self.restarts.labels(model).inc()

    def first_token(self, model: str, seconds: float) -> None:
        self.ttft.labels(model).observe(seconds)

    def finished(self, model: str, event: Event) -> None:
        if isinstance(event, Done):
            self.prompt_tokens.labels(model).inc(event.prompt_eval_count)
            self.generated_tokens.labels(model).inc(event.eval_count)
            if event.eval_count and event.eval_duration > 0:
                self.speed.labels(model).observe(event.eval_count / (event.eval_duration / 1e9))
            self.requests_done.labels(model, "done").inc()
        elif isinstance(event, Embeddings):
            self.prompt_tokens.labels(model).inc(event.prompt_eval_count)
            self.requests_done.labels(model, "done").inc()
        elif isinstance(event, Failure):
            self.requests_done.labels(model, event.kind).inc()

    # ---- HTTP ------------------------------------------------------------------------------

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` with every HTTP request counted and timed."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            t0 = time.perf_counter()
            status = 500  # if the app raises before answering

            async def send_counted(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_counted)
            finally:
                route = scope.get("path_template") or UNMATCHED
                self.requests.labels(route, scope["method"], str(status)).inc()
                self.latency.labels(route).observe(time.perf_counter() - t0)

        return counted

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The samples in the format the scraper's Accept asks for (OpenMetrics or Prometheus text)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class SchedulerCollector(Collector):
    """Gauges read from the scheduler at scrape time (no bookkeeping between scrapes)."""

    def __init__(self, scheduler: Callable[[], Scheduler | None]) -> None:
        self._scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        scheduler = self._scheduler()
        queue = GaugeMetricFamily("pyllama_queue_depth", "Requests waiting for a model load or a free slot")
        loaded = GaugeMetricFamily("pyllama_models_loaded", "Runners (loaded models) in memory")
        labels = ["model", "role"]
        slots = GaugeMetricFamily("pyllama_slots", "Parallel request slots of each runner", labels=labels)
        busy = GaugeMetricFamily("pyllama_slots_busy", "Slots running a request", labels=labels)
        kv_used = GaugeMetricFamily("pyllama_kv_cache_cells_used", "KV cache cells the runner's sequences hold "
                                    "(running requests and idle prompt caches)", labels=labels)
        kv_total = GaugeMetricFamily("pyllama_kv_cache_cells", "KV cache cells of the runner's context",
                                     labels=labels)
        stats = scheduler.runner_stats() if scheduler is not None else []
        queue.add_metric([], scheduler.pending if scheduler is not None else 0)
        loaded.add_metric([], len(stats))
        for stat in stats:
            key = [stat.model, stat.role]
            slots.add_metric(key, stat.slots)
            busy.add_metric(key, stat.slots_busy)
            kv_used.add_metric(key, stat.kv_used)
            kv_total.add_metric(key, stat.kv_total)
        yield from (queue, loaded, slots, busy, kv_used, kv_total)


@get("/metrics", include_in_schema=False)
async def metrics_route(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    metrics: Metrics = state.metrics
    body, content_type = metrics.exposition(request.headers.get("accept", ""))
    return Response(content=body, media_type=content_type)


def install(state: State) -> Metrics:
    """The app's Metrics, kept in ``state`` (the route reads it there)."""
    metrics = Metrics(lambda: state.get("scheduler"))
    state.metrics = metrics
    return metrics


__all__ = ["Metrics", "install", "metrics_enabled", "metrics_route"]
