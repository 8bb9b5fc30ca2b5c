"""Speculative decoding: drafts for the generating slots, and the rule that accepts them.

Before each step's batch is built, every generating slot may get a draft:
tokens a cheap predictor guesses will follow its next token. Two drafters:

* a draft model (a model's DRAFT layer: a small model with the target's
  vocabulary) in its own context, one sequence per slot; it guesses
  greedily, all slots' drafts advancing together, one draft decode per
  drafted position, and a slot stops drafting when its best guess is less
  likely than ``draft_p_min`` (over the draft's ten best tokens, as
  llama.cpp's draft sampler sees them);
* prompt lookup (``speculative: "ngram"``): the tokens that followed the
  latest earlier occurrence of the history's last few tokens.

The target then decodes each slot's next token and its draft in the one
batch of the step (logits at every position), and the slot's own sampler
picks a token at each position in order until one differs from the draft
(llama.cpp's ``common_sampler_sample_and_accept_n``). Every emitted token is
thus drawn from the target given the tokens before it: greedy output is the
output without a draft, sampled output keeps the target's distribution.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pyllama import _native
from pyllama.engine.slots import common_prefix, predict_limit

if TYPE_CHECKING:
    from pyllama.engine.jobs import GenerateJob
    from pyllama.engine.slots import Slot

log = logging.getLogger(__name__)

NGRAM_SIZES = (4, 3)  # prompt lookup tries the longest match first (a 2-token match guesses too often)
DRAFT_TOP_K = 10  # candidates the draft's confidence is measured over (llama.cpp's draft sampler)


class VocabMismatch(_native.ModelLoadError):
    """The draft model cannot draft for the target: their vocabularies differ."""


def check_vocab(target: _native.Model, draft: _native.Model) -> None:
    """Raise VocabMismatch unless both models tokenize alike (same type, size,
    special tokens and token texts), naming both files."""
    def fail(why: str) -> None:
        raise VocabMismatch(f"draft model {draft.path} does not share the vocabulary of {target.path}: {why}")

    if draft.vocab_type != target.vocab_type:
        fail(f"vocabulary type {draft.vocab_type} vs {target.vocab_type}")
    if draft.n_vocab != target.n_vocab:
        fail(f"{draft.n_vocab} tokens vs {target.n_vocab}")
    for name in ("token_bos", "token_eos", "add_bos"):
        if getattr(draft, name) != getattr(target, name):
            fail(f"{name} is {getattr(draft, name)} vs {getattr(target, name)}")
    for tok in range(target.n_vocab):
        if draft.token_text(tok) != target.token_text(tok):
            fail(f"token {tok} is {draft.token_text(tok)!r} vs {target.token_text(tok)!r}")


def lookup_draft(history: Sequence[int], n_max: int) -> list[int]:
    """Prompt lookup: what followed the latest earlier occurrence of the
    last n tokens (n from NGRAM_SIZES, longest first), up to ``n_max``."""
    if n_max <= 0 or len(history) < 2:
        return []
    h = np.asarray(history, dtype=np.int64)
    for n in NGRAM_SIZES:
        if len(h) <= n:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(h[:-1], n)
        hits = np.flatnonzero((windows == h[-n:]).all(axis=1))
        if hits.size:
            start = int(hits[-1]) + n
            return [int(t) for t in h[start:start + n_max]]
    return []


def _confidence(logits: np.ndarray) -> tuple[int, float]:
    """The draft's best token and its probability among its top candidates."""
    k = min(DRAFT_TOP_K, logits.shape[0])
    top = np.argpartition(logits, -k)[-k:]
    values = logits[top].astype(np.float64)
    best = int(np.argmax(values))
    p = 1.0 / float(np.exp(values - values[best]).sum())
    return int(top[best]), p


@dataclass
class DraftPlan:
    """One slot's wish: draft after ``history`` (the target's cached tokens
    and the next token), at most ``n_max`` tokens."""

    seq: int
    history: list[int]
    n_max: int
    p_min: float


class DraftModel:
    """A draft model's context, one sequence per slot, and the tokens each holds."""

    def __init__(self, target: _native.Model, draft: str | os.PathLike[str] | _native.Model, *, n_ctx: int,
                 n_parallel: int, n_batch: int, n_threads: int | None, n_gpu_layers: int = -1,
                 flash_attn: bool | str | None = None, type_k: str = "f16", type_v: str = "f16") -> None:
        self.model = draft if isinstance(draft, _native.Model) else _native.Model(draft, n_gpu_layers=n_gpu_layers)
        check_vocab(target, self.model)
        self.ctx = _native.Context(self.model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=min(n_batch, 512),
                                   n_seq_max=n_parallel, n_threads=n_threads, flash_attn=flash_attn,
                                   type_k=type_k, type_v=type_v)
        self.batch = _native.Batch(n_batch, n_seq_max=1)
        self.cache: list[list[int]] = [[] for _ in range(n_parallel)]
        self.n_decodes = 0

    @property
    def path(self) -> str:
        return self.model.path

    def _decode(self) -> None:
        self.ctx.decode(self.batch)
        self.n_decodes += 1

    def _first_batch(self, plans: list[DraftPlan]) -> dict[int, int]:
        """Bring each sequence up to its history: keep the common prefix,
        decode what is new in chunks, and fill ``self.batch`` with the rest
        (at least the last token, with logits). Returns each plan's logits row."""
        todo: dict[int, list[int]] = {}
        for i, plan in enumerate(plans):
            cache = self.cache[plan.seq]
            keep = min(common_prefix(cache, plan.history), len(plan.history) - 1)
            if keep < len(cache):
                if not self.ctx.seq_rm(plan.seq, keep, -1):
                    self.ctx.seq_rm(plan.seq, -1, -1)
                    keep = 0
                del cache[keep:]
            todo[i] = plan.history[keep:]
        while sum(len(tokens) for tokens in todo.values()) > self.batch.capacity:
            self.batch.clear()
            room = self.batch.capacity
            for i, tokens in todo.items():
                take = tokens[:max(0, min(room, len(tokens) - 1))]
                if take:
                    self.batch.add_sequence(take, len(self.cache[plans[i].seq]), plans[i].seq, logits_last=False)
                    self.cache[plans[i].seq].extend(take)
                    todo[i] = tokens[len(take):]
                    room -= len(take)
            if room == self.batch.capacity:  # more sequences than batch places (the speculator never asks that)
                raise _native.DecodeError("too many sequences to draft for in one batch", -1)
            self._decode()
        self.batch.clear()
        rows = {}
        for i, tokens in todo.items():
            seq = plans[i].seq
            rows[i] = self.batch.add_sequence(tokens, len(self.cache[seq]), seq, logits_last=True) + len(tokens) - 1
            self.cache[seq].extend(tokens)
        return rows

    def draft(self, plans: list[DraftPlan]) -> list[list[int]]:
        """Each plan's draft (possibly empty). A failed draft decode costs the
        drafts, never the requests: the draft's memory is then forgotten."""
        out: list[list[int]] = [[] for _ in plans]
        try:
            rows = self._first_batch(plans)
            while rows:
                self._decode()
                picked: dict[int, int] = {}
                for i, row in rows.items():
                    tok, p = _confidence(self.ctx.logits(row))
                    if p < plans[i].p_min:
                        continue
                    out[i].append(tok)
                    if len(out[i]) < plans[i].n_max:
                        picked[i] = tok
                self.batch.clear()
                rows = {}
                for i, tok in picked.items():
                    seq = plans[i].seq
                    rows[i] = self.batch.add(tok, len(self.cache[seq]), seq, True)
                    self.cache[seq].append(tok)
        except _native.DecodeError as exc:
            log.warning("draft decode failed, drafting nothing this step: %s", exc)
            for cache in self.cache:
                cache.clear()
            self.ctx.clear()
            return [[] for _ in plans]
        return out


class Speculator:
    """Decides each step's drafts (``add_drafts``); the loop settles them after
    the target's decode (``verify_draft``, ``settle_draft``). ``draft`` is None
    when the model has no DRAFT (then only prompt lookup drafts)."""

    def __init__(self, draft: DraftModel | None, n_ctx_slot: int) -> None:
        self.draft_model = draft
        self.n_ctx_slot = n_ctx_slot

    def mode(self, job: GenerateJob) -> str:
        """The drafter a request uses: "draft", "ngram" or "off"."""
        opts = job.request.options
        mode = opts.speculative
        if mode == "auto":
            mode = "draft" if self.draft_model is not None else "off"
        if opts.draft_num_predict <= 0 or (mode == "draft" and self.draft_model is None):
            return "off"
        return mode

    def add_drafts(self, entries: Sequence[Slot], budget: int) -> None:
        """Append drafts to the pending token of generating slots, using at
        most ``budget`` batch places, within each slot's context room and
        output limit. Drafts shorter than ``draft_min`` are dropped."""
        plans: list[tuple[GenerateJob, DraftPlan]] = []
        for slot in entries:
            job = slot.job
            # Image/audio cells hold placeholders, not tokens: a draft model or a
            # prompt lookup must never see (or propose) one, so such jobs do not speculate.
            if job is None or job.pending_prompt or job.media or budget <= 0:
                continue
            mode = self.mode(job)
            if mode == "off":
                continue
            opts = job.request.options
            left = predict_limit(opts.num_predict, self.n_ctx_slot) - len(job.generated) - 1
            n_max = min(opts.draft_num_predict, budget, self.n_ctx_slot - len(slot.cache) - 1, left)
            if n_max <= 0 or n_max < opts.draft_min:
                continue
            history = [*slot.cache, job.next_token]
            if mode == "ngram":
                self._take(job, lookup_draft(history, n_max))
            else:
                plans.append((job, DraftPlan(slot.seq, history, n_max, opts.draft_p_min)))
            budget -= n_max
        if plans and self.draft_model is not None:
            for (job, _), tokens in zip(plans, self.draft_model.draft([p for _, p in plans])):
                self._take(job, tokens)

    @staticmethod
    def _take(job: GenerateJob, tokens: list[int]) -> None:
        if tokens and len(tokens) >= job.request.options.draft_min:
            job.pending.extend(tokens)


def verify_draft(sampler: _native.Sampler, ctx: _native.Context, i_first: int, draft: Sequence[int]) -> list[int]:
    """Sample at each drafted position in order while the draft agrees: the
    tokens to emit (the accepted draft tokens, then the target's own next one)."""
    out: list[int] = []
    for k in range(len(draft) + 1):
        tok = sampler.sample(ctx, i_first + k)
        out.append(tok)
        if k == len(draft) or tok != draft[k]:
            break
    return out


def settle_draft(ctx: _native.Context, slot: Slot, job: GenerateJob, n_draft: int, n_accepted: int) -> None:
    """Forget the rejected draft tokens' KV and count the draft in the job."""
    rejected = n_draft - n_accepted
    if rejected:
        ctx.seq_rm(slot.seq, len(slot.cache) - rejected, -1)
        del slot.cache[-rejected:]
    job.n_drafted += n_draft
    job.n_draft_accepted += n_accepted
