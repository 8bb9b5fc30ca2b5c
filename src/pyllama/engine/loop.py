"""The decode loop: the one thread that owns the llama context.

Each step: take new requests and cancellations from the inbox, free the
slots of cancelled requests, give idle slots to waiting requests (longest
cached prefix first), then build ONE batch - the sampled token of every
generating slot first, then prompt chunks of slots still evaluating their
prompt, up to n_batch tokens - decode it once, and sample every slot whose
output is in it. A long prompt therefore advances a chunk per step while
the running streams keep getting a token per step.

With LoRA adapters, a context applies one set of scales to a whole decode,
so a step decodes its slots in groups of equal adapter settings (usually
one group), switching the context's scales between them; and a slot's
cached prefix is reused only by a request with the same setting, since
its KV was computed under that setting.

With speculative decoding (engine/speculative.py) a generating slot's
pending tokens are its next token and a draft; the loop decodes them all
with logits, and the sampler's picks, up to the first disagreement, are
emitted one by one as if each had its own step.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar, Union

from pyllama import _native
from pyllama.engine.embedding import finish_vector, pack_inputs
from pyllama.engine.handle import RequestHandle
from pyllama.engine.jobs import EmbedJob, GenerateJob
from pyllama.engine.media import MediaStep, reuse_floor, text_run, text_tokens
from pyllama.engine.prefix_share import PrefixSharer
from pyllama.engine.prompt_cache import PromptCache
from pyllama.engine.sampling import token_logprob
from pyllama.engine.slots import Slot, choose_slot, predict_limit, shift_plan
from pyllama.engine.speculative import Speculator, settle_draft, verify_draft
from pyllama.engine.types import Chunk, Done, Embeddings, Failure

log = logging.getLogger(__name__)

Job = Union[GenerateJob, EmbedJob]
J = TypeVar("J", GenerateJob, EmbedJob)
_STOP = object()


def _drop_cancelled(jobs: deque[J]) -> None:
    """Remove queued jobs whose caller cancelled, telling each why."""
    if any(job.handle.cancelled for job in jobs):
        for job in [j for j in jobs if j.handle.cancelled]:
            jobs.remove(job)
            job.handle.put(Failure("the request was cancelled", "cancelled"))


class EngineLoop:
    """Runs on the engine thread; other threads only call ``post``/``cancel``."""

    def __init__(self, model: _native.Model, ctx: _native.Context, n_ctx_slot: int, embeddings: bool,
                 adapters: Sequence[_native.LoraAdapter] = (), media: MediaStep | None = None,
                 speculator: Speculator | None = None, share_prefixes: bool = True,
                 prompt_cache_bytes: int = 0) -> None:
        self.model = model
        self.ctx = ctx
        self.n_ctx_slot = n_ctx_slot
        self.embeddings = embeddings
        self.n_batch = ctx.n_batch
        self.slots = [Slot(seq) for seq in range(ctx.n_seq_max)]
        self.share = PrefixSharer(ctx, self.slots, enabled=share_prefixes and not embeddings)
        self.prompt_cache = PromptCache(ctx, 0 if embeddings else prompt_cache_bytes)
        self.batch = _native.Batch(self.n_batch, n_seq_max=1)
        self.inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.waiting: deque[GenerateJob] = deque()
        self.embed_jobs: deque[EmbedJob] = deque()
        self.n_decodes = 0
        self.after_step: Callable[[], None] | None = None
        self._clock = 0
        self._stopping = False
        self.adapters = list(adapters)
        self.media = media  # images/audio: their own decodes, before the step's token batch
        self.lora_now: tuple[float, ...] = ()
        self.use_lora(tuple(1.0 for _ in self.adapters))  # the defaults: what embeddings use
        self.speculator = speculator

    # ---- other threads --------------------------------------------------------

    def post(self, job: Job) -> None:
        self.inbox.put(job)

    def cancel(self, handle: RequestHandle) -> None:
        """Wake the loop; it notices ``handle.cancelled`` at its next step."""
        self.inbox.put(handle)

    def stop(self) -> None:
        self.inbox.put(_STOP)

    # ---- the loop ---------------------------------------------------------------

    def run(self) -> None:
        """Until stopped: drain the inbox (blocking only when idle), step."""
        try:
            while not self._stopping:
                self._drain(block=not self._has_work())
                if self._stopping:
                    break
                try:
                    self._step()
                except Exception as exc:  # keep serving: fail what was running, not the engine
                    log.exception("engine step failed")
                    self._fail_running(f"internal engine error: {exc}", "decode")
                if self.after_step is not None:
                    self.after_step()
        finally:
            self._drain(block=False)
            self._fail_everything("the engine was closed", "closed")
            if self.after_step is not None:
                self.after_step()

    def _has_work(self) -> bool:
        return bool(self.waiting or self.embed_jobs or any(not s.idle for s in self.slots))

    def _drain(self, block: bool) -> None:
        try:
            item = self.inbox.get() if block else self.inbox.get_nowait()
            while True:
                if item is _STOP:
                    self._stopping = True
                elif isinstance(item, GenerateJob):
                    self.waiting.append(item)
                elif isinstance(item, EmbedJob):
                    self.embed_jobs.append(item)
                item = self.inbox.get_nowait()
        except queue.Empty:
            pass

    def _step(self) -> None:
        self._reap_cancelled()
        if self.embeddings:
            if self.embed_jobs:
                self._embed_step()
            return
        self._admit()
        if self.media is not None:
            self.media.run(self)
        for group in self._by_lora(self._build_entries()):
            job = group[0].job
            assert job is not None
            self.use_lora(job.lora)
            self._run_batch(group)

    # ---- slots ------------------------------------------------------------------

    def _release(self, slot: Slot) -> None:
        self._clock += 1
        self.share.release(slot)
        slot.job = None
        slot.last_used = self._clock

    def _reap_cancelled(self) -> None:
        for slot in self.slots:
            if slot.job is not None and slot.job.handle.cancelled:
                slot.job.handle.put(Failure("the request was cancelled", "cancelled"))
                self._release(slot)
        _drop_cancelled(self.waiting)
        _drop_cancelled(self.embed_jobs)

    def _admit(self) -> None:
        """Waiting requests, in order, onto idle slots (best cached prefix)."""
        while self.waiting:
            job = self.waiting[0]
            choice = choose_slot(self.slots, job.prompt, job.lora)
            if choice is None:
                return
            self.waiting.popleft()
            slot, n_common = choice
            # Re-evaluate at least the last prompt token: its logits are needed.
            n_common = reuse_floor(job.media, min(n_common, len(job.prompt) - 1))
            if n_common < len(slot.cache):
                self.prompt_cache.save(slot, self.share.usable(slot), job, n_common)
            slot.lora = job.lora
            if n_common < len(slot.cache):
                if not self.ctx.seq_rm(slot.seq, n_common, -1):
                    self.ctx.seq_rm(slot.seq, -1, -1)
                    n_common = 0
                del slot.cache[n_common:]
            job.n_cached = self._reuse(slot, job, n_common)
            job.t_start = time.perf_counter_ns()
            slot.job = job

    def _reuse(self, slot: Slot, job: GenerateJob, n_common: int) -> int:
        """A longer prefix than the slot's own, from another slot or the host cache."""
        n = self.share.admit(slot, job, n_common)
        return n if self.share.holds(slot) else self.prompt_cache.restore(slot, job, n)

    # ---- generation ---------------------------------------------------------------

    def _build_entries(self) -> list[Slot]:
        """Choose what goes into this step's batch: one token per generating
        slot, then prompt chunks in arrival order while n_batch allows."""
        entries: list[Slot] = []
        self.share.step()
        for slot in self.slots:
            job = slot.job
            if job is None or job.prefilling:
                continue
            if len(slot.cache) + 1 > self.n_ctx_slot and not self._shift(slot, job):
                continue
            job.pending = [job.next_token]
            job.pending_prompt = False
            entries.append(slot)
        if self.speculator is not None:
            self.speculator.add_drafts(entries, self.n_batch - len(entries))
        budget = self.n_batch - sum(len(s.job.pending) for s in entries if s.job is not None)
        prefilling = sorted((s for s in self.slots
                             if s.job is not None and s.job.prefilling and not self.share.holds(s)),
                            key=lambda s: s.job.order if s.job is not None else 0)
        for slot in prefilling:
            if budget <= 0:
                break
            job = slot.job
            assert job is not None
            start = len(slot.cache)
            take = text_run(job.media, start, min(len(job.prompt) - start, budget))
            if take == 0:
                continue  # its next prompt cells are a medium: the media step decodes them
            job.pending = job.prompt[start:start + take].tolist()
            job.pending_prompt = True
            entries.append(slot)
            budget -= take
        return entries

    def _by_lora(self, entries: list[Slot]) -> list[list[Slot]]:
        """The step's slots in groups of one adapter setting, the context's
        current one first (no switch when every request agrees)."""
        if not self.adapters or not entries:
            return [entries] if entries else []
        groups: dict[tuple[float, ...], list[Slot]] = {}
        for slot in entries:
            assert slot.job is not None
            groups.setdefault(slot.job.lora, []).append(slot)
        current = groups.pop(self.lora_now, None)
        return ([current] if current else []) + list(groups.values())

    def use_lora(self, scales: tuple[float, ...]) -> None:
        """Set the context's adapter scales (only when they change)."""
        if scales != self.lora_now:
            self.ctx.set_lora(zip(self.adapters, scales))
            self.lora_now = scales

    def _fill_batch(self, entries: list[Slot]) -> None:
        batch = self.batch
        batch.clear()
        for slot in entries:
            job = slot.job
            assert job is not None
            pos = len(slot.cache)
            if job.pending_prompt:
                last = pos + len(job.pending) == len(job.prompt)
                first = batch.add_sequence(job.pending, pos, slot.seq, logits_last=last)
                job.i_batch = first + len(job.pending) - 1 if last else -1
            else:  # the next token, then any draft: logits at every position
                job.i_batch = batch.add(job.pending[0], pos, slot.seq, True)
                for k, tok in enumerate(job.pending[1:], 1):
                    batch.add(tok, pos + k, slot.seq, True)

    def _run_batch(self, entries: list[Slot]) -> None:
        """Decode once, then sample. On a full KV cache, retry slot by slot
        so only the slot that does not fit fails."""
        self._fill_batch(entries)
        try:
            self.decode(self.batch)
        except _native.KVCacheFullError as exc:
            if len(entries) > 1:
                for slot in entries:
                    if slot.job is not None:
                        self._run_batch([slot])
                return
            self._fail_slot(entries[0], f"the context is full: no room in the KV cache for "
                                        f"{len(self.batch)} more tokens ({exc})", "context")
            return
        except _native.DecodeError as exc:
            for slot in entries:
                self._fail_slot(slot, f"decode failed: {exc}", "decode")
            return
        self.n_decodes += 1
        self._settle(entries)

    def _settle(self, entries: list[Slot]) -> None:
        """After a decode: the slots' caches hold what it added; sample the slots with output."""
        now = time.perf_counter_ns()
        for slot in entries:
            job = slot.job
            assert job is not None
            slot.cache.extend(job.pending)
            if job.i_batch < 0:
                continue
            if job.prefilling:
                job.t_prompt_done = now
                if job.request.options.num_predict == 0:
                    self._finish(slot, job, "length")
                    continue
            self._sample(slot, job)

    def decode(self, batch: _native.Batch) -> None:
        """The one call into llama.cpp's forward pass (a seam for tests)."""
        self.ctx.decode(batch)

    def _sample(self, slot: Slot, job: GenerateJob) -> None:
        draft = [] if job.pending_prompt else job.pending[1:]
        tokens = verify_draft(job.sampler, self.ctx, job.i_batch, draft)
        if draft:
            settle_draft(self.ctx, slot, job, len(draft), len(tokens) - 1)
        for k, tok in enumerate(tokens):
            if not self._emit(slot, job, tok, job.i_batch + k):
                return

    def _emit(self, slot: Slot, job: GenerateJob, tok: int, i_logits: int) -> bool:
        """Stream one sampled token; False when it ended the request."""
        lp = None
        job.n_sampled += 1
        if self.model.is_eog(tok):
            self._finish(slot, job, "stop")
            return False
        if job.want_logprobs:
            lp = token_logprob(self.ctx.logits(i_logits), tok, job.n_top, self.model.token_to_piece)
        job.generated.append(tok)
        text = job.stream.push(self.model.token_to_piece(tok))
        job.handle.put(Chunk(text, [tok], [lp] if lp is not None else []))
        limit = predict_limit(job.request.options.num_predict, self.n_ctx_slot)
        if job.stream.stopped:
            self._finish(slot, job, "stop")
        elif limit > 0 and len(job.generated) >= limit:
            self._finish(slot, job, "length")
        else:
            job.next_token = tok
            return True
        return False

    def _shift(self, slot: Slot, job: GenerateJob) -> bool:
        """Make room for one more token: drop half of what follows the kept
        tokens and slide the rest back. False (and the request ends with
        "length") when shifting is off, impossible, or frees nothing."""
        n_discard = shift_plan(len(slot.cache), job.n_keep)
        can = job.request.shift and job.request.options.num_predict != -2 and self.ctx.can_shift and not job.media
        if not can or n_discard == 0:
            self._finish(slot, job, "length")
            return False
        keep = job.n_keep
        self.ctx.seq_rm(slot.seq, keep, keep + n_discard)
        self.ctx.seq_add(slot.seq, keep + n_discard, -1, -n_discard)
        del slot.cache[keep:keep + n_discard]
        self.share.shifted(slot, keep)
        log.debug("slot %d: context shift kept %d, discarded %d", slot.seq, keep, n_discard)
        return True

    def _finish(self, slot: Slot, job: GenerateJob, reason: str) -> None:
        tail = job.stream.finish()
        if tail:
            job.handle.put(Chunk(tail))
        now = time.perf_counter_ns()
        prompt_done = job.t_prompt_done or now
        job.handle.put(Done(
            done_reason=reason,
            prompt_eval_count=len(job.prompt) - job.n_cached,
            eval_count=job.n_sampled,
            load_duration=job.t_start - job.t_submit,
            prompt_eval_duration=prompt_done - job.t_start,
            eval_duration=now - prompt_done,
            total_duration=now - job.t_submit,
            context=(text_tokens(job.prompt) if job.media else job.prompt.tolist()) + job.generated,
            cached_tokens=job.n_cached,
            truncated=job.truncated,
            stop_sequence=job.stream.matched,
            draft_count=job.n_drafted,
            draft_accepted_count=job.n_draft_accepted,
        ))
        self._release(slot)

    def _fail_slot(self, slot: Slot, message: str, kind: str) -> None:
        """End the slot's request with an error and forget its KV, which may
        be half written."""
        if slot.job is not None:
            slot.job.handle.put(Failure(message, kind))
        self.ctx.seq_rm(slot.seq, -1, -1)
        slot.cache.clear()
        self._release(slot)

    # ---- embeddings -------------------------------------------------------------

    def _embed_step(self) -> None:
        """Whole inputs, each its own sequence, as many as fit one batch."""
        placed = pack_inputs(self.embed_jobs, self.n_batch, len(self.slots))
        if not placed:
            job = self.embed_jobs.popleft()
            job.handle.put(Failure("an embedding input does not fit the batch", "context"))
            return
        batch = self.batch
        batch.clear()
        now = time.perf_counter_ns()
        for job, index, seq in placed:
            job.t_start = job.t_start or now
            tokens = job.inputs[index]
            if self.ctx.has_memory:  # encoder-only models (BERT) keep no KV
                self.ctx.seq_rm(seq, -1, -1)
            batch.add_arrays(tokens, range(tokens.size), [seq] * tokens.size, [True] * tokens.size)
        failed: dict[int, str] = {}
        try:
            self.decode(batch)
            self.n_decodes += 1
            for job, index, seq in placed:
                try:
                    job.vectors[index] = finish_vector(self.ctx.seq_embeddings(seq), job.request.normalize)
                    job.n_done += 1
                except (ValueError, _native.LlamaError) as exc:
                    failed[id(job)] = str(exc)
        except _native.DecodeError as exc:
            for job, _, _ in placed:
                failed[id(job)] = f"decode failed: {exc}"
        finally:
            for _, _, seq in placed:
                if self.ctx.has_memory:
                    self.ctx.seq_rm(seq, -1, -1)
        self._settle_embed_jobs(failed)

    def _settle_embed_jobs(self, failed: dict[int, str]) -> None:
        now = time.perf_counter_ns()
        for job in list(self.embed_jobs):
            if id(job) in failed:
                job.handle.put(Failure(failed[id(job)], "decode"))
            elif job.n_done == len(job.inputs):
                job.handle.put(Embeddings(
                    embeddings=[v for v in job.vectors if v is not None],
                    prompt_eval_count=sum(int(t.size) for t in job.inputs),
                    load_duration=job.t_start - job.t_submit,
                    prompt_eval_duration=now - job.t_start,
                    total_duration=now - job.t_submit,
                ))
            else:
                continue
            self.embed_jobs.remove(job)

    # ---- shutdown and failures ----------------------------------------------------

    def _fail_running(self, message: str, kind: str) -> None:
        for slot in self.slots:
            if slot.job is not None:
                self._fail_slot(slot, message, kind)
        while self.embed_jobs:
            self.embed_jobs.popleft().handle.put(Failure(message, kind))

    def _fail_everything(self, message: str, kind: str) -> None:
        for slot in self.slots:
            if slot.job is not None:
                slot.job.handle.put(Failure(message, kind))
                self._release(slot)
        for jobs in (self.waiting, self.embed_jobs):
            while jobs:
                jobs.popleft().handle.put(Failure(message, kind))
