"""Which models are loaded: runners on demand, keep_alive, limits, memory fit.

The HTTP layer calls, from its asyncio loop:

    ref = resolve_model(store, "smollm2")               # store name -> file, digest, details
    events = await scheduler.generate(ref, GenerateRequest(...), options={"num_ctx": 2048}, keep_alive="5m")
    async for event in events: ...                      # engine events; Failure(kind="runner") if it died
    result = await scheduler.embed(ref, EmbedRequest([...]))
    scheduler.ps()                                      # /api/ps entries
    await scheduler.unload(ref); await scheduler.close()

Ollama's rules, in order of a request's life: more than ``max_queue``
requests waiting (for a load or a slot) -> ServerBusyError (503). A loaded
runner with the same weights and LoRA adapters (``ModelRef.weights``) and
the same runner options (``RunnerOptions``: the table's load and context
options) is reused; different options reload it once it is idle. Loading
first makes room: at ``max_loaded_models``, or when the memory estimate
does not fit what is free, idle runners are unloaded least recently used
first; busy ones are waited for, never killed; if nothing is left to unload
and it still does not fit, the load fails with a clear error. Each runner
has ``num_parallel`` slots (unset: 4 when that fits, else 1); a request
holds one while it runs. When a
runner's last request ends its keep_alive timer starts (0: unload now;
forever: never).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from pyllama.config import Config
from pyllama.engine import EngineError, InvalidRequestError
from pyllama.engine.types import Done, EmbedRequest, Embeddings, Event, Failure, GenerateRequest
from pyllama.keep_alive import FOREVER, parse_env_keep_alive, parse_keep_alive
from pyllama.model_ref import LoadedModel, ModelRef, RunnerOptions, one_per_model, resolve_model
from pyllama.runner import (
    LoadSpec,
    MemoryEstimate,
    RunnerClient,
    RunnerDiedError,
    RunnerLoadError,
    RunnerStream,
    available_ram,
    available_vram,
    estimate_memory,
)
from pyllama.runner import watchdog
from pyllama.runner.client import THREAD_WAIT_POLICIES
from pyllama.runner.memory import gpu_devices, type_bytes
from pyllama.store.gguf_meta import GGUFError

log = logging.getLogger("pyllama.scheduler")

AUTO_PARALLEL = 4
"""Slots per runner when PYLLAMA_NUM_PARALLEL is unset and they fit (Ollama's old automatic choice)."""

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
_FOREVER_SECONDS = (2**63 - 1) / 1e9  # Go's max Duration, as Ollama prints "forever"


# ---- errors ---------------------------------------------------------------------------------


class SchedulerError(RuntimeError):
    """A request could not be scheduled; ``status_code`` is the HTTP status."""

    status_code = 500

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ServerBusyError(SchedulerError):
    """More than PYLLAMA_MAX_QUEUE requests are waiting."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(BUSY_MESSAGE)


class ModelLoadError(SchedulerError):
    """The runner could not load the model (``unable to load model: ...``)."""


class InsufficientMemoryError(SchedulerError):
    """The model does not fit in free memory even with every idle model unloaded."""


class SchedulerClosedError(SchedulerError):
    """The scheduler was closed (the server is shutting down)."""


# ---- loaded runners -------------------------------------------------------------------------

_Key = tuple[str, tuple[str, ...], bool]  # weights path, adapter paths, embeddings


@dataclass(eq=False)
class _Runner:
    """One loaded model: its process, accounting and keep-alive state."""

    key: _Key
    ref: ModelRef
    options: RunnerOptions  # num_ctx resolved (never 0)
    client: RunnerClient
    estimate: MemoryEstimate
    size_vram: int
    slots: asyncio.Semaphore
    keep_alive: float
    n_parallel: int = 1
    refs: int = 0
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float = 0.0
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def set_expiry(self, now: float) -> None:
        seconds = _FOREVER_SECONDS if math.isinf(self.keep_alive) else self.keep_alive
        self.expires_at = now + seconds


# ---- the scheduler --------------------------------------------------------------------------


class Scheduler:
    """Loads models into runner processes on demand and routes requests to them.

    ``n_threads`` is the default thread count of runners (0: the engine's
    default); ``memory_available``/``vram_available`` are injectable for tests.
    """

    def __init__(self, config: Config | None = None, *, n_threads: int = 0, load_timeout: float = 300.0,
                 runner_log_level: str = "WARNING", memory_available: Any = available_ram,
                 vram_available: Any = available_vram) -> None:
        config = config or Config.from_env()
        self.config = config
        self.default_keep_alive = parse_env_keep_alive(config.keep_alive)
        self.num_parallel = config.num_parallel  # 0: automatic (_parallel_for)
        self.max_queue = config.max_queue
        self.n_gpu_devices = len(gpu_devices())
        self.max_loaded = config.max_loaded_models or 3 * max(1, self.n_gpu_devices)
        self.n_threads = n_threads
        self.load_timeout = load_timeout
        self.watchdog_timeout = watchdog.watchdog_timeout(config.runner_watchdog)
        self.runner_log_level = runner_log_level
        type_bytes(config.kv_cache_type)  # reject an unknown cache type up front
        if config.thread_wait not in THREAD_WAIT_POLICIES or not config.thread_wait:
            raise ValueError(f"unsupported thread wait policy '{config.thread_wait}' (use passive or active)")
        self._memory_available = memory_available
        self._vram_available = vram_available
        self._runners: dict[_Key, _Runner] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self._load_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending = 0
        self._closed = False

    # ---- public API --------------------------------------------------------------------

    async def generate(self, ref: ModelRef, request: GenerateRequest, *,
                       options: Mapping[str, Any] | RunnerOptions | None = None,
                       keep_alive: object = None) -> AsyncIterator[Event]:
        """Schedule a completion; returns once the runner accepted it.
        Raises ServerBusyError, ModelLoadError, InsufficientMemoryError,
        InvalidRequestError (bad request, before anything streams)."""
        runner, stream, waited = await self._start_request(ref, request, options, keep_alive, embeddings=False)
        return self._events(runner, stream, waited)

    async def embed(self, ref: ModelRef, request: EmbedRequest, *,
                    options: Mapping[str, Any] | RunnerOptions | None = None,
                    keep_alive: object = None) -> Embeddings:
        """Embed a batch of inputs; a runner failure raises EngineError."""
        if isinstance(options, Mapping) and options.get("lora"):
            raise InvalidRequestError("the lora option applies to generation; "
                                      "embeddings use the model's adapters as stored")
        runner, stream, waited = await self._start_request(ref, request, options, keep_alive, embeddings=True)
        result: Embeddings | None = None
        async for event in self._events(runner, stream, waited):
            if isinstance(event, Failure):
                raise EngineError(event.message, event.kind)
            if isinstance(event, Embeddings):
                result = event
        if result is None:
            raise EngineError("the runner ended the request without a result")
        return result

    async def load(self, ref: ModelRef, *, options: Mapping[str, Any] | RunnerOptions | None = None,
                   keep_alive: object = None, embeddings: bool = False) -> None:
        """Load (or keep) a model without running anything: Ollama's empty-prompt request."""
        keep = self._keep_alive(keep_alive)
        runner = await self._acquire(ref, self.runner_options(ref, options), keep, embeddings)
        self._release(runner)

    async def unload(self, ref: ModelRef | str) -> bool:
        """Unload a model now, or when its running requests end. Returns
        whether it was loaded."""
        weights = ref.weights if isinstance(ref, ModelRef) else None
        name = ref if isinstance(ref, str) else None
        found = False
        for runner in list(self._runners.values()):
            if runner.key[:2] == weights or runner.ref.name == name:
                found = True
                runner.keep_alive = 0.0
                if runner.refs == 0:
                    await self._unload(runner)
        return found

    def ps(self) -> list[LoadedModel]:
        """Loaded models, latest expiry first (what /api/ps lists), one entry per model."""
        return one_per_model(LoadedModel(
            name=r.ref.name, model=r.ref.display_model, size=r.estimate.total, size_vram=r.size_vram,
            digest=r.ref.digest, details=r.ref.details, expires_at=r.expires_at,
            context_length=r.client.info.n_ctx if r.client.info else r.options.num_ctx, pid=r.client.pid,
            adapters=r.ref.adapters, num_parallel=r.n_parallel)
            for r in sorted(self._runners.values(), key=lambda r: r.client.spec.embeddings))  # generation first

    @property
    def pending(self) -> int:
        """Requests waiting for a load or a slot."""
        return self._pending

    async def close(self) -> None:
        """Unload everything (requests in flight end with a runner Failure)."""
        self._closed = True
        for runner in list(self._runners.values()):
            runner.client.stop_reason = "the server shut down"
            await self._unload(runner)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        self._notify()

    # ---- requests ------------------------------------------------------------------------

    def _keep_alive(self, value: object) -> float:
        return self.default_keep_alive if value is None else parse_keep_alive(value)

    async def _start_request(self, ref: ModelRef, request: GenerateRequest | EmbedRequest,
                             options: Mapping[str, Any] | RunnerOptions | None, keep_alive: object,
                             embeddings: bool) -> tuple[_Runner, RunnerStream, int]:
        t0 = time.perf_counter_ns()
        keep = self._keep_alive(keep_alive)
        wanted = self.runner_options(ref, options)
        for attempt in range(2):
            runner = await self._acquire(ref, wanted, keep, embeddings)
            try:
                stream = await runner.client.submit(request)
            except RunnerDiedError:
                self._release(runner)
                if attempt == 1:
                    raise
                continue  # it died while we waited for a slot: start a new one
            except BaseException:
                self._release(runner)
                raise
            return runner, stream, time.perf_counter_ns() - t0
        raise AssertionError("unreachable")

    async def _events(self, runner: _Runner, stream: RunnerStream, waited: int) -> AsyncIterator[Event]:
        """Forward a runner stream; release the slot however it ends (a
        consumer that stops early cancels the request in the runner)."""
        try:
            while (event := await stream.next()) is not None:
                if isinstance(event, (Done, Embeddings)) and waited:
                    event = msgspec.structs.replace(event, load_duration=event.load_duration + waited,
                                                    total_duration=event.total_duration + waited)
                yield event
        finally:
            if not stream.finished:
                stream.cancel()
            self._release(runner)

    # ---- acquiring a runner ------------------------------------------------------------------

    async def _acquire(self, ref: ModelRef, wanted: RunnerOptions, keep_alive: float,
                       embeddings: bool) -> _Runner:
        """A runner for the request with one of its slots held."""
        if self._closed:
            raise SchedulerClosedError("the server is shutting down")
        if self._pending >= self.max_queue:
            raise ServerBusyError()
        self._pending += 1
        try:
            runner = await self._runner_for(ref, wanted, embeddings)
            try:
                await runner.slots.acquire()
            except BaseException:
                runner.refs -= 1
                self._after_release(runner)
                raise
        finally:
            self._pending -= 1
        runner.keep_alive = keep_alive
        runner.cancel_timer()
        runner.set_expiry(time.time())
        return runner

    def runner_options(self, ref: ModelRef, options: Mapping[str, Any] | RunnerOptions | None) -> RunnerOptions:
        """The runner a request needs, num_ctx decided (the request's, else
        PYLLAMA_CONTEXT_LENGTH, else 4096; capped at the model's training
        context). The server renders prompts for this num_ctx."""
        wanted = options if isinstance(options, RunnerOptions) else RunnerOptions.from_mapping(options)
        return wanted.resolved(ref, self.config.context_length, self.n_threads)

    async def _runner_for(self, ref: ModelRef, wanted: RunnerOptions, embeddings: bool) -> _Runner:
        """Reuse a matching runner or load one (making room first); the
        returned runner has this request counted in ``refs``."""
        key = (*ref.weights, embeddings)
        while True:
            runner = self._runners.get(key)
            if runner is not None and runner.client.alive and runner.options == wanted:
                runner.refs += 1
                runner.cancel_timer()
                return runner
            wait_for: asyncio.Event | None = None
            async with self._load_lock:
                if self._closed:
                    raise SchedulerClosedError("the server is shutting down")
                runner = self._runners.get(key)
                if runner is not None and runner.client.alive and runner.options == wanted:
                    continue  # someone else loaded it meanwhile: take the fast path
                if runner is not None and runner.refs > 0 and runner.client.alive:
                    wait_for = self._wake  # different options: reload once it is idle
                else:
                    if runner is not None:
                        await self._unload(runner)
                    n_parallel = self._parallel_for(ref, wanted, embeddings)
                    estimate = self._estimate(ref, wanted, n_parallel)
                    wait_for, use_gpu = await self._make_room(key, estimate)
                    if wait_for is None:
                        runner = await self._start(key, ref, wanted, estimate, use_gpu, n_parallel)
                        runner.refs += 1
                        return runner
            await wait_for.wait()

    def _parallel_for(self, ref: ModelRef, options: RunnerOptions, embeddings: bool) -> int:
        """Slots for a new runner: 1 for embeddings, PYLLAMA_NUM_PARALLEL when
        set, else AUTO_PARALLEL when the model with that many contexts fits
        the memory free now (or would fit once idle runners are unloaded), else 1."""
        if embeddings:
            return 1
        if self.num_parallel > 0:
            return self.num_parallel
        estimate = self._estimate(ref, options, AUTO_PARALLEL)
        idle = sum(r.estimate.total for r in self._runners.values() if r.refs == 0)
        if self._fits(estimate)[0] or self._fits(replace(estimate, weights=estimate.weights - idle))[0]:
            return AUTO_PARALLEL
        return 1

    def _estimate(self, ref: ModelRef, options: RunnerOptions, n_parallel: int) -> MemoryEstimate:
        n_ctx = options.num_ctx * n_parallel
        try:
            estimate = estimate_memory(ref.path, n_ctx, n_ubatch=min(options.num_batch, 512),
                                       type_k=self.config.kv_cache_type, type_v=self.config.kv_cache_type)
        except (GGUFError, OSError) as exc:
            raise ModelLoadError(f"unable to load model: {ref.path}: {exc}") from None
        try:
            adapters = sum(path.stat().st_size for path in ref.adapters)
        except OSError as exc:
            raise ModelLoadError(f"unable to load LoRA adapter for model {ref.path}: {exc}") from None
        return replace(estimate, weights=estimate.weights + adapters) if adapters else estimate

    def _fits(self, estimate: MemoryEstimate) -> tuple[bool, bool]:
        """(fits, on_gpu): all on the GPU when it fits in free VRAM, else in RAM."""
        if self.n_gpu_devices and estimate.total <= int(self._vram_available()):
            return True, True
        return estimate.total <= int(self._memory_available()), False

    async def _make_room(self, key: _Key, estimate: MemoryEstimate) -> tuple[asyncio.Event | None, bool]:
        """Unload idle runners (LRU first) until the model fits and the count
        allows it. Returns (event to wait on, None when ready; on_gpu)."""
        while True:
            if self._stopping:
                await asyncio.gather(*list(self._stopping), return_exceptions=True)
            too_many = len(self._runners) >= self.max_loaded
            fits, on_gpu = self._fits(estimate)
            if not too_many and fits:
                return None, on_gpu
            idle = sorted((r for r in self._runners.values() if r.refs == 0), key=lambda r: r.last_used)
            if idle:
                victim = idle[0]
                log.info("unloading %s to make room (%s)", victim.ref.name,
                         "max loaded models" if too_many else "memory")
                await self._unload(victim)
                continue
            if not self._runners:
                need = estimate.total / 2**30
                have = int(self._memory_available()) / 2**30
                raise InsufficientMemoryError(
                    f"model requires more system memory ({need:.1f} GiB) than is available ({have:.1f} GiB)")
            return self._wake, on_gpu  # every loaded model is busy: wait for one to finish

    async def _start(self, key: _Key, ref: ModelRef, options: RunnerOptions,
                     estimate: MemoryEstimate, on_gpu: bool, n_parallel: int) -> _Runner:
        n_gpu_layers = options.num_gpu if on_gpu or not self.n_gpu_devices else 0
        spec = LoadSpec(model=str(ref.path), n_ctx=options.num_ctx * n_parallel, n_parallel=n_parallel,
                        n_batch=options.num_batch, n_threads=options.num_thread, embeddings=key[2],
                        n_gpu_layers=n_gpu_layers, flash_attn=self.config.flash_attention,
                        type_k=self.config.kv_cache_type, type_v=self.config.kv_cache_type,
                        lora=list(key[1]), prompt_cache_mib=0 if key[2] else self.config.prompt_cache_mib,
                        thread_wait=self.config.thread_wait)
        log.info("loading %s (num_ctx %d x %d slots, ~%.0f MiB)", ref.name, options.num_ctx, n_parallel,
                 estimate.total / 2**20)
        try:
            client = await RunnerClient.start(spec, timeout=self.load_timeout, log_level=self.runner_log_level)
        except RunnerLoadError as exc:
            raise ModelLoadError(str(exc)) from None
        info = client.info
        memory = info.memory if info is not None and info.memory else estimate.total
        estimate = MemoryEstimate(weights=estimate.weights, kv_cache=estimate.kv_cache,
                                  compute=max(0, memory - estimate.weights - estimate.kv_cache))
        runner = _Runner(key=key, ref=ref, options=options, client=client, estimate=estimate,
                         size_vram=estimate.total if on_gpu and n_gpu_layers != 0 else 0,
                         slots=asyncio.Semaphore(n_parallel), keep_alive=self.default_keep_alive,
                         n_parallel=n_parallel)
        runner.set_expiry(time.time())
        self._runners[key] = runner
        for coro in (self._watch(runner), watchdog.watch(client, self.watchdog_timeout, ref.name)):
            watcher = asyncio.create_task(coro)
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        return runner

    async def _watch(self, runner: _Runner) -> None:
        """Forget a runner whose process ended on its own."""
        await runner.client.wait_closed()
        if self._runners.get(runner.key) is runner:
            log.warning("runner for %s exited: %s", runner.ref.name, runner.client.exit_message)
            del self._runners[runner.key]
            runner.cancel_timer()
        self._notify()

    # ---- releasing and unloading ---------------------------------------------------------------

    def _release(self, runner: _Runner) -> None:
        """A request ended: free its slot; start the keep-alive clock when idle."""
        runner.slots.release()
        runner.refs -= 1
        self._after_release(runner)

    def _after_release(self, runner: _Runner) -> None:
        runner.last_used = time.monotonic()
        if runner.refs == 0 and self._runners.get(runner.key) is runner:
            runner.set_expiry(time.time())
            if runner.keep_alive <= 0:
                self._unload_soon(runner)
            elif runner.keep_alive != FOREVER:
                loop = asyncio.get_running_loop()
                runner.cancel_timer()
                runner.timer = loop.call_later(runner.keep_alive, self._expire, runner)
        self._notify()

    def _expire(self, runner: _Runner) -> None:
        runner.timer = None
        if runner.refs == 0 and self._runners.get(runner.key) is runner:
            log.info("keep_alive of %s expired", runner.ref.name)
            self._unload_soon(runner)

    def _unload_soon(self, runner: _Runner) -> None:
        self._detach(runner)  # at once: no request may pick it up from now on
        task = asyncio.get_running_loop().create_task(self._unload(runner))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _unload(self, runner: _Runner) -> None:
        """Forget the runner at once (no new request can pick it), then stop its process."""
        self._detach(runner)
        await runner.client.close()
        self._notify()

    def _detach(self, runner: _Runner) -> None:
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        runner.cancel_timer()

    def _notify(self) -> None:
        """Wake everyone waiting for a runner to go idle or away."""
        self._wake.set()
        self._wake = asyncio.Event()


__all__ = [
    "BUSY_MESSAGE",
    "InsufficientMemoryError",
    "LoadedModel",
    "ModelLoadError",
    "ModelRef",
    "RunnerOptions",
    "Scheduler",
    "SchedulerClosedError",
    "SchedulerError",
    "ServerBusyError",
    "resolve_model",
]
