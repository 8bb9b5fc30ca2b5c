"""``Engine``: one model, one context, N slots, and the thread that runs them.

Everything a request needs that is not decoding - tokenizing text, checking
options, truncating the prompt, building the sampler chain (grammars are
parsed here) - happens in ``submit`` on the caller's thread. The loop
thread gets a ready job.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.embedding import prepare_input
from pyllama.engine.rerank import PairBuilder
from pyllama.engine.errors import EngineClosedError, InvalidRequestError
from pyllama.engine.handle import Completion, RequestHandle
from pyllama.engine.jobs import EmbedJob, GenerateJob
from pyllama.engine.loop import EngineLoop
from pyllama.engine.media import MediaKeys, MediaSpan, MediaStep, media_prompt, text_tokens
from pyllama.engine.options import lora_scales, options_from_mapping, validate_options, validate_top_logprobs
from pyllama.engine.sampling import build_sampler, prime_sampler
from pyllama.engine.slots import keep_count, truncate_prompt
from pyllama.engine.speculative import DraftModel, Speculator
from pyllama.engine.streaming import TextStream
from pyllama.engine.types import EmbedRequest, Embeddings, GenerateRequest, RerankRequest, SamplingOptions
from pyllama.store.adapters import AdapterMismatch, check_adapter_file

PromptLike = str | Sequence[int] | npt.NDArray[np.integer[Any]]


def _default_pooling(model: _native.Model) -> str | None:
    """The model's own pooling when its GGUF names one; otherwise mean
    pooling, so a generative model can still embed (a choice of ours)."""
    if model.architecture and f"{model.architecture}.pooling_type" in model.metadata:
        return None
    return "mean"


class Engine:
    """Continuous batching over one llama context.

    ``n_ctx`` is the whole context; each of the ``n_parallel`` slots gets
    ``ctx.n_ctx_seq`` cells of it (llama.cpp rounds to 256), capped at the
    model's training context. With ``embeddings=True`` the engine serves
    embedding requests only (and ``n_ubatch`` is raised to ``n_batch``, so
    a whole input is one micro-batch). ``lora`` lists LoRA adapters (GGUF
    paths, or adapters already loaded onto ``model``): each applies with scale 1.0 unless a request's ``lora`` option says
    otherwise (adapter ids are positions in this list). ``projector`` is a
    multimodal projector (an mmproj GGUF path, or a ``Projector`` on ``model``):
    requests may then carry images (and audio, when the projector has an
    audio encoder).
    ``draft`` is a draft
    model (a path, or a Model) for speculative decoding; it must share the
    model's vocabulary (ModelLoadError otherwise) and gets a context of its
    own with the same size and slots. Requests choose their drafter with the
    ``speculative`` option (prompt lookup needs no draft model).
    ``share_prefixes``
    lets a slot copy the longest matching prefix another slot holds or is
    evaluating instead of evaluating it again (``engine.prefix_share``);
    ``prompt_cache_mib`` keeps the states of reused slots in host memory up
    to that budget, for returning conversations (``engine.prompt_cache``).
    """

    def __init__(self, model: str | os.PathLike[str] | _native.Model, *, n_ctx: int = 4096,
                 n_parallel: int = 1, n_batch: int = 512, n_ubatch: int | None = None,
                 n_threads: int | None = None, n_threads_batch: int | None = None,
                 embeddings: bool = False, pooling: str | None = None, n_gpu_layers: int = -1,
                 flash_attn: bool | str | None = None, type_k: str = "f16", type_v: str = "f16",
                 lora: Sequence[str | os.PathLike[str] | _native.LoraAdapter] = (),
                 projector: str | os.PathLike[str] | _native.Projector | None = None,
                 draft: str | os.PathLike[str] | _native.Model | None = None,
                 share_prefixes: bool = True, prompt_cache_mib: float = 0) -> None:
        t0 = time.perf_counter_ns()
        self.model = model if isinstance(model, _native.Model) else _native.Model(model, n_gpu_layers=n_gpu_layers)
        # Before the context: its graph reservation counts the adapters' nodes.
        self.adapters = [a if isinstance(a, _native.LoraAdapter) else self._load_lora(a) for a in lora]
        if embeddings:
            # One micro-batch per batch and one KV stream: with a stream per
            # sequence llama.cpp splits a batch into equal-length pieces per
            # sequence and pools each piece separately, so a sequence longer
            # than its batch-mates would get the mean of its last piece only.
            n_ubatch = n_batch
            pooling = pooling or _default_pooling(self.model)
        self.ctx = _native.Context(
            self.model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch or min(n_batch, 512),
            n_seq_max=n_parallel, n_threads=n_threads, n_threads_batch=n_threads_batch,
            embeddings=embeddings, pooling=pooling, flash_attn=flash_attn, type_k=type_k, type_v=type_v,
            kv_unified=embeddings)
        if projector is not None and not isinstance(projector, _native.Projector):
            projector = _native.Projector(projector, self.model, n_threads=n_threads_batch or n_threads,
                                          use_gpu=n_gpu_layers != 0, flash_attn=flash_attn)
        self.projector = projector
        self._media_keys = MediaKeys()
        self.embeddings = embeddings
        n_train = self.model.n_ctx_train
        self.n_ctx_slot = min(self.ctx.n_ctx_seq, n_train) if n_train > 0 else self.ctx.n_ctx_seq
        self.draft: DraftModel | None = None
        if draft is not None and not embeddings:
            self.draft = DraftModel(self.model, draft, n_ctx=n_ctx, n_parallel=n_parallel, n_batch=n_batch,
                                    n_threads=n_threads, n_gpu_layers=n_gpu_layers, flash_attn=flash_attn,
                                    type_k=type_k, type_v=type_v)
        self.load_duration = time.perf_counter_ns() - t0
        media = MediaStep(self.projector, self.ctx.n_batch) if self.projector is not None and not embeddings else None
        self._loop = EngineLoop(self.model, self.ctx, self.n_ctx_slot, embeddings, self.adapters, media,
                                Speculator(self.draft, self.n_ctx_slot), share_prefixes,
                                int(prompt_cache_mib * 2**20))
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._closed = False
        self._ids = itertools.count(1)

    def _load_lora(self, path: str | os.PathLike[str]) -> _native.LoraAdapter:
        """Check the adapter against the model before llama.cpp loads it (its
        loader accepts tensors the CPU backend then crashes on)."""
        try:
            check_adapter_file(path, self.model.path)
        except AdapterMismatch as exc:
            raise _native.ModelLoadError(f"failed to load LoRA adapter {os.fspath(path)} for model "
                                         f"{self.model.path}: {exc}") from None
        return self.model.load_lora(path)

    # ---- lifecycle ----------------------------------------------------------------

    @property
    def n_parallel(self) -> int:
        return self.ctx.n_seq_max

    @property
    def n_batch(self) -> int:
        return self.ctx.n_batch

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Engine:
        """Start the loop thread (idempotent)."""
        with self._state_lock:
            if self._closed:
                raise EngineClosedError("the engine was closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop.run, name="pyllama-engine", daemon=True)
                self._thread.start()
                # An engine dropped without close() still stops its thread.
                weakref.finalize(self, self._loop.stop)
        return self

    def call_after_each_step(self, callback: Callable[[], None] | None) -> None:
        """Have the loop thread call ``callback`` after every step and once
        when it stops: e.g. to send in one go what a step's events gathered
        (the runner's frames). It must be quick and must not raise."""
        self._loop.after_step = callback

    def close(self, timeout: float | None = None) -> None:
        """Stop the loop after its current step; every unfinished request
        ends with ``Failure(kind="closed")``."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:  # never started: nothing can have been queued
            self._loop.stop()
            thread.join(timeout)

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- text -----------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Tokens as the engine sees a text prompt (special tokens parsed,
        so rendered chat templates work)."""
        return [int(t) for t in self.model.tokenize(text, add_special=add_special, parse_special=True)]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.model.detokenize(list(tokens), unparse_special=True)

    # ---- requests ---------------------------------------------------------------------

    def submit(self, request: GenerateRequest | EmbedRequest | RerankRequest | PromptLike,
               options: SamplingOptions | Mapping[str, Any] | None = None) -> RequestHandle:
        """Queue a request; returns at once. A bare prompt (text or tokens)
        becomes a GenerateRequest with ``options``. Invalid requests raise
        InvalidRequestError here, on the caller's thread."""
        if isinstance(request, EmbedRequest):
            return self._submit_embed(request)
        if isinstance(request, RerankRequest):
            return self._submit_rerank(request)
        if not isinstance(request, GenerateRequest):
            request = GenerateRequest(prompt=request if isinstance(request, str) else self._token_list(request))
        if options is not None:
            opts = options if isinstance(options, SamplingOptions) else options_from_mapping(options, request.options)
            request = msgspec.structs.replace(request, options=opts)
        return self._submit_generate(request)

    def generate(self, prompt: PromptLike, options: SamplingOptions | Mapping[str, Any] | None = None,
                 **fields: Any) -> Completion:
        """Blocking convenience: submit and gather the result. ``fields`` are
        other GenerateRequest fields (logprobs, top_logprobs, shift, ...)."""
        text_or_tokens = prompt if isinstance(prompt, str) else self._token_list(prompt)
        request = GenerateRequest(prompt=text_or_tokens, **fields)
        return self.submit(request, options).result()

    def embed(self, inputs: Sequence[PromptLike], *, truncate: bool = True, normalize: bool = True) -> list[list[float]]:
        """Blocking convenience: one vector per input."""
        items = [x if isinstance(x, str) else self._token_list(x) for x in inputs]
        return self.submit(EmbedRequest(items, truncate=truncate, normalize=normalize)).result().embeddings

    def rerank(self, query: str, documents: Sequence[str], *, truncate: bool = True) -> list[float]:
        """Blocking convenience for a reranker: one relevance score per
        document, in the documents' order."""
        result = self.submit(RerankRequest(query, list(documents), truncate=truncate)).result()
        return [v[0] for v in result.embeddings]

    def _token_list(self, tokens: Sequence[int] | npt.NDArray[np.integer[Any]]) -> list[int]:
        return [int(t) for t in tokens]

    def _new_handle(self) -> RequestHandle:
        return RequestHandle(next(self._ids), self._loop.cancel)

    def _post(self, job: GenerateJob | EmbedJob) -> None:
        with self._state_lock:
            if self._closed:
                raise EngineClosedError("the engine was closed")
            if self._thread is None:
                raise EngineClosedError("the engine is not running: call start() or use it as a context manager")
            self._loop.post(job)

    def _prompt_tokens(self, request: GenerateRequest) -> tuple[npt.NDArray[np.int32], list[MediaSpan]]:
        if request.images:
            if self.projector is None:
                raise InvalidRequestError("this model is missing data required for image input")
            if not isinstance(request.prompt, str):
                raise InvalidRequestError("a prompt with images must be text")
            tokens, spans = media_prompt(self.projector, self._media_keys, request.prompt, request.images,
                                         request.add_special)
            if tokens.size > self.n_ctx_slot:
                raise InvalidRequestError(f"the input length ({tokens.size} tokens, images included) exceeds "
                                          f"the context length ({self.n_ctx_slot})")
            return tokens, spans
        if isinstance(request.prompt, str):
            tokens = self.model.tokenize(request.prompt, add_special=request.add_special, parse_special=True)
        else:
            tokens = np.asarray(request.prompt, dtype=np.int32).reshape(-1)
            if tokens.size and (tokens.min() < 0 or tokens.max() >= self.model.n_vocab):
                raise InvalidRequestError(f"prompt token ids must be in [0, {self.model.n_vocab})")
        if tokens.size == 0:
            raise InvalidRequestError("the prompt is empty")
        return tokens, []

    def _submit_generate(self, request: GenerateRequest) -> RequestHandle:
        t_submit = time.perf_counter_ns()
        if self.embeddings:
            raise InvalidRequestError("this engine was created for embeddings and cannot generate")
        opts = request.options
        validate_options(opts, self.model.n_vocab)
        validate_top_logprobs(request.top_logprobs)
        lora = lora_scales(opts.lora, len(self.adapters))
        if opts.speculative == "draft" and self.draft is None:
            raise InvalidRequestError('speculative "draft" needs a model with a draft model (a DRAFT layer); '
                                      'use "ngram" for prompt lookup')
        tokens, spans = self._prompt_tokens(request)
        has_bos = self.model.token_bos is not None and int(tokens[0]) == self.model.token_bos
        n_keep = keep_count(opts.num_keep, int(tokens.size), has_bos, self.n_ctx_slot)
        truncated = tokens.size > self.n_ctx_slot
        if truncated:
            if not request.truncate:
                raise InvalidRequestError(
                    f"the input length ({tokens.size} tokens) exceeds the context length ({self.n_ctx_slot})")
            tokens = np.asarray(truncate_prompt(tokens.tolist(), self.n_ctx_slot, n_keep), dtype=np.int32)
        try:
            sampler = build_sampler(self.model, opts, self.n_ctx_slot)
        except ValueError as exc:
            raise InvalidRequestError(f"invalid sampling options (grammar?): {exc}") from exc
        prime_sampler(sampler, opts, text_tokens(tokens) if spans else tokens.tolist(), self.n_ctx_slot)
        handle = self._new_handle()
        job = GenerateJob(
            handle=handle, request=request, prompt=tokens, sampler=sampler, stream=TextStream(opts.stop),
            n_keep=n_keep, truncated=bool(truncated), t_submit=t_submit, order=handle.id,
            n_top=request.top_logprobs, want_logprobs=request.logprobs or request.top_logprobs > 0,
            lora=lora, media=spans)
        self._post(job)
        return handle

    def _submit_embed(self, request: EmbedRequest) -> RequestHandle:
        t_submit = time.perf_counter_ns()
        if not self.embeddings:
            raise InvalidRequestError("this engine was not created with embeddings=True")
        limit = min(self.n_ctx_slot, self.n_batch)
        inputs = [prepare_input(self.model, item, limit, request.truncate) for item in request.inputs]
        handle = self._new_handle()
        if not inputs:
            handle.put(Embeddings(embeddings=[]))
            return handle
        self._post(EmbedJob(handle=handle, request=request, inputs=inputs, t_submit=t_submit))
        return handle

    def _submit_rerank(self, request: RerankRequest) -> RequestHandle:
        """Pairs become embedding inputs whose pooled output (not normalised)
        is the classification head's: the loop packs them like any input."""
        t_submit = time.perf_counter_ns()
        if not self.embeddings or self.ctx.pooling != "rank":
            raise InvalidRequestError("this engine does not rerank: that needs embeddings=True and a model "
                                      f"with rank pooling (pooling is '{self.ctx.pooling}')")
        builder = PairBuilder(self.model, min(self.n_ctx_slot, self.n_batch))
        inputs = builder.pairs(request.query, request.documents, request.truncate)
        handle = self._new_handle()
        if not inputs:
            handle.put(Embeddings(embeddings=[]))
            return handle
        pooled = EmbedRequest([], truncate=request.truncate, normalize=False)
        self._post(EmbedJob(handle=handle, request=pooled, inputs=inputs, t_submit=t_submit))
        return handle
