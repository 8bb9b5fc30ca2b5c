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
runner with the same weights, LoRA adapters and projector (``ModelRef.weights``) and
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
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import msgspec

from pyllama.config import Config
from pyllama.engine import EngineError, InvalidRequestError
from pyllama.engine.types import Done, EmbedRequest, Embeddings, Event, Failure, GenerateRequest, RerankRequest
from pyllama.loaded_runner import LoadedRunner, RunnerKey
from pyllama.load_plan import LoadPlanError, estimate_load, load_spec
from pyllama.keep_alive import FOREVER, parse_env_keep_alive, parse_keep_alive
from pyllama.model_ref import LoadedModel, ModelRef, RunnerOptions, one_per_model, resolve_model
from pyllama.observer import RunnerStat, SchedulerObserver
from pyllama.rpc import RpcPool, RpcUnreachableError, parse_tensor_split
from pyllama.runner import (
    MemoryEstimate,
    RunnerClient,
    RunnerDiedError,
    RunnerLoadError,
    RunnerStream,
    available_ram,
    available_vram,
)
from pyllama.runner import watchdog
from pyllama.runner.client import THREAD_WAIT_POLICIES
from pyllama.runner.memory import gpu_devices, type_bytes
from pyllama.scheduler_errors import (
    BUSY_MESSAGE,
    InsufficientMemoryError,
    ModelLoadError,
    SchedulerClosedError,
    SchedulerError,
    ServerBusyError,
)

log = logging.getLogger("pyllama.scheduler")

AUTO_PARALLEL = 4
"""Slots per runner when PYLLAMA_NUM_PARALLEL is unset and they fit (Ollama's old automatic choice)."""

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
        self.rpc = RpcPool(config.rpc_servers)  # remote devices (docs/rpc.md); bad values refused here
        self.tensor_split = parse_tensor_split(config.tensor_split)
        if config.thread_wait not in THREAD_WAIT_POLICIES:
            raise ValueError(f"unsupported thread wait policy '{config.thread_wait}' (use auto, passive or active)")
        self._memory_available = memory_available
        self._vram_available = vram_available
        self._runners: dict[RunnerKey, LoadedRunner] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self._load_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending = 0
        self._closed = False
        self.observer = SchedulerObserver()  # the /metrics collector replaces it

    # ---- public API --------------------------------------------------------------------

    async def generate(self, ref: ModelRef, request: GenerateRequest, *,
                       options: Mapping[str, Any] | RunnerOptions | None = None,
                       keep_alive: object = None) -> AsyncIterator[Event]:
        """Schedule a completion; returns once the runner accepted it.
        Raises ServerBusyError, ModelLoadError, InsufficientMemoryError,
        InvalidRequestError (bad request, before anything streams)."""
        runner, stream, waited = await self._start_request(ref, request, options, keep_alive, embeddings=False)
        return self._events(runner, stream, waited, ref.name)

    async def embed(self, ref: ModelRef, request: EmbedRequest | RerankRequest, *,
                    options: Mapping[str, Any] | RunnerOptions | None = None,
                    keep_alive: object = None) -> Embeddings:
        """Embed a batch of inputs (or score rerank pairs: the same pooled
        output, from the model's embeddings runner); a runner failure raises EngineError."""
        if isinstance(options, Mapping) and options.get("lora"):
            raise InvalidRequestError("the lora option applies to generation; "
                                      "embeddings use the model's adapters as stored")
        runner, stream, waited = await self._start_request(ref, request, options, keep_alive, embeddings=True)
        result: Embeddings | None = None
        async for event in self._events(runner, stream, waited, ref.name):
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
        weights = (*ref.weights, str(ref.projector or ""), str(ref.draft or "")) if isinstance(ref, ModelRef) else None
        name = ref if isinstance(ref, str) else None
        found = False
        for runner in list(self._runners.values()):
            if (*runner.key[:2], *runner.key[3:]) == weights or runner.ref.name == name:
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
            adapters=r.ref.adapters, devices=tuple(r.client.info.devices if r.client.info else ()),
            draft=None if r.client.spec.embeddings else r.ref.draft, num_parallel=r.n_slots)
            for r in sorted(self._runners.values(), key=lambda r: r.client.spec.embeddings))  # generation first

    def runner_stats(self) -> list[RunnerStat]:
        """Slots and KV cache cells of every loaded runner (for /metrics)."""
        return [RunnerStat(r.ref.name, "embed" if r.key[2] else "generate", r.n_slots, r.busy, r.client.kv_used,
                           r.client.info.n_ctx if r.client.info else 0) for r in self._runners.values()]

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

    async def _start_request(self, ref: ModelRef, request: GenerateRequest | EmbedRequest | RerankRequest,
                             options: Mapping[str, Any] | RunnerOptions | None, keep_alive: object,
                             embeddings: bool) -> tuple[LoadedRunner, RunnerStream, int]:
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

    async def _events(self, runner: LoadedRunner, stream: RunnerStream, waited: int, name: str = "") -> AsyncIterator[Event]:
        """Forward a runner stream; release the slot however it ends (a
        consumer that stops early cancels the request in the runner)."""
        watch = self.observer.watch(name or runner.ref.name, waited)  # name: the model as requested
        try:
            while (event := await stream.next()) is not None:
                if isinstance(event, (Done, Embeddings)) and waited:
                    event = msgspec.structs.replace(event, load_duration=event.load_duration + waited,
                                                    total_duration=event.total_duration + waited)
                watch.see(event)
                yield event
        finally:
            if not stream.finished:
                stream.cancel()
            watch.close()
            self._release(runner)

    # ---- acquiring a runner ------------------------------------------------------------------

    async def _acquire(self, ref: ModelRef, wanted: RunnerOptions, keep_alive: float,
                       embeddings: bool) -> LoadedRunner:
        """A runner for the request with one of its slots held."""
        if self._closed:
            raise SchedulerClosedError("the server is shutting down")
        if self._pending >= self.max_queue:
            self.observer.queue_full()
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
            runner.busy += 1
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
        if wanted.main_gpu is not None and wanted.main_gpu >= max(1, self.n_gpu_devices):
            # 0 on a machine without GPUs is the CPU, as Ollama treats it; more names a GPU that is not there.
            raise InvalidRequestError(f"main_gpu {wanted.main_gpu} is not a GPU of this machine "
                                      f"({self.n_gpu_devices} GPU devices)")
        return wanted.resolved(ref, self.config.context_length, self.n_threads)

    async def _runner_for(self, ref: ModelRef, wanted: RunnerOptions, embeddings: bool) -> LoadedRunner:
        """Reuse a matching runner or load one (making room first); the
        returned runner has this request counted in ``refs``."""
        key = (*ref.weights, embeddings, str(ref.projector or ""), str(ref.draft or ""))
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
                    estimate = self._estimate(ref, wanted, n_parallel, embeddings)
                    wait_for, use_gpu = await self._make_room(key, estimate)
                    if wait_for is None:
                        runner = await self._start(key, ref, wanted, estimate, use_gpu, n_parallel)
                        runner.refs += 1
                        return runner
            await wait_for.wait()

    def _parallel_for(self, ref: ModelRef, options: RunnerOptions, embeddings: bool) -> int:
        """Request slots of a new runner: PYLLAMA_NUM_PARALLEL when set, else
        AUTO_PARALLEL when the model with that many contexts fits the memory
        free now (or once idle runners are unloaded), else 1. An embeddings
        runner's memory does not grow with its slots (one KV stream, docs/scheduler.md)."""
        if self.num_parallel > 0:
            return self.num_parallel
        if embeddings:
            return AUTO_PARALLEL
        estimate = self._estimate(ref, options, AUTO_PARALLEL, embeddings)
        idle = sum(r.estimate.total for r in self._runners.values() if r.refs == 0)
        if self._fits(estimate)[0] or self._fits(replace(estimate, weights=estimate.weights - idle))[0]:
            return AUTO_PARALLEL
        return 1

    def _estimate(self, ref: ModelRef, options: RunnerOptions, n_parallel: int, embeddings: bool) -> MemoryEstimate:
        try:
            return estimate_load(ref, options, n_parallel, embeddings, self.config.kv_cache_type)
        except LoadPlanError as exc:
            raise ModelLoadError(str(exc)) from None

    def _fits(self, estimate: MemoryEstimate) -> tuple[bool, bool]:
        """(fits, on_gpu): all on the GPU when it fits in free VRAM, else in RAM."""
        if self.n_gpu_devices and estimate.total <= int(self._vram_available()):
            return True, True
        return estimate.total <= int(self._memory_available()) + (self.rpc.free or 0), False

    async def _make_room(self, key: RunnerKey, estimate: MemoryEstimate) -> tuple[asyncio.Event | None, bool]:
        """Unload idle runners (LRU first) until the model fits and the count
        allows it. Returns (event to wait on, None when ready; on_gpu). An RPC
        server serves one runner at a time: with RPC servers, one runner at a time."""
        if self.rpc and self.rpc.free is None and not self._runners:
            await self._rpc_servers(key[0])  # what the remote devices have free, before the first load
        while True:
            if self._stopping:
                await asyncio.gather(*list(self._stopping), return_exceptions=True)
            too_many = len(self._runners) >= (1 if self.rpc else self.max_loaded)
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

    async def _start(self, key: RunnerKey, ref: ModelRef, options: RunnerOptions,
                     estimate: MemoryEstimate, on_gpu: bool, n_parallel: int) -> LoadedRunner:
        servers = await self._rpc_servers(key[0])
        n_gpu_layers = options.num_gpu if on_gpu or not self.n_gpu_devices or servers else 0
        spec = load_spec(ref, key, options, self.config, n_parallel=n_parallel, n_gpu_layers=n_gpu_layers,
                         rpc_servers=servers, tensor_split=self.tensor_split)
        log.info("loading %s (num_ctx %d x %d slots, ~%.0f MiB)", ref.name, options.num_ctx, n_parallel,
                 estimate.total / 2**20)
        try:
            with self.observer.loading(ref.name):
                client = await RunnerClient.start(spec, timeout=self.load_timeout, log_level=self.runner_log_level)
        except RunnerLoadError as exc:
            raise ModelLoadError(str(exc)) from None
        info = client.info
        memory = info.memory if info is not None and info.memory else estimate.total
        estimate = MemoryEstimate(weights=estimate.weights, kv_cache=estimate.kv_cache,
                                  compute=max(0, memory - estimate.weights - estimate.kv_cache))
        runner = LoadedRunner(key=key, ref=ref, options=options, client=client, estimate=estimate,
                         size_vram=estimate.total if on_gpu and n_gpu_layers != 0 else 0,
                         slots=asyncio.Semaphore(n_parallel), n_slots=n_parallel, keep_alive=self.default_keep_alive)
        runner.set_expiry(time.time())
        self._runners[key] = runner
        for coro in (self._watch(runner), watchdog.watch(client, self.watchdog_timeout, ref.name)):
            watcher = asyncio.create_task(coro)
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        return runner

    async def _rpc_servers(self, model: str) -> tuple[str, ...]:
        """The RPC servers to load with now (docs/rpc.md); a down one fails the load naming it."""
        try:
            return await self.rpc.usable()
        except RpcUnreachableError as exc:
            raise ModelLoadError(f"unable to load model: {model}: {exc}") from None

    async def _watch(self, runner: LoadedRunner) -> None:
        """Forget a runner whose process ended on its own."""
        await runner.client.wait_closed()
        if self._runners.get(runner.key) is runner:
            log.warning("runner for %s exited: %s", runner.ref.name, runner.client.exit_message)
            self.rpc.mark_lost(runner.client.spec.rpc_servers)
            del self._runners[runner.key]
            runner.cancel_timer()
            self.observer.runner_exited(runner.ref.name)
        self._notify()

    # ---- releasing and unloading ---------------------------------------------------------------

    def _release(self, runner: LoadedRunner) -> None:
        """A request ended: free its slot; start the keep-alive clock when idle."""
        runner.slots.release()
        runner.busy -= 1
        runner.refs -= 1
        self._after_release(runner)

    def _after_release(self, runner: LoadedRunner) -> None:
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

    def _expire(self, runner: LoadedRunner) -> None:
        runner.timer = None
        if runner.refs == 0 and self._runners.get(runner.key) is runner:
            log.info("keep_alive of %s expired", runner.ref.name)
            self._unload_soon(runner)

    def _unload_soon(self, runner: LoadedRunner) -> None:
        self._detach(runner)  # at once: no request may pick it up from now on
        task = asyncio.get_running_loop().create_task(self._unload(runner))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _unload(self, runner: LoadedRunner) -> None:
        """Forget the runner at once (no new request can pick it), then stop its process."""
        self._detach(runner)
        await runner.client.close()
        self._notify()

    def _detach(self, runner: LoadedRunner) -> None:
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
