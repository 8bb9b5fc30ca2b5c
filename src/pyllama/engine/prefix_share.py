"""Cross-slot prefix sharing: a prefix evaluated once serves every slot.

Eight users of one assistant send the same long system prompt. Per-slot
reuse only helps a slot that already holds it; this module lets a slot
being admitted take the KV of the longest matching prefix *any* slot holds
(busy or idle), and evaluate only the rest.

The context keeps one KV stream per sequence (``kv_unified=False``, so each
slot's attention covers its own cells only). llama.cpp's ``seq_cp`` across
streams copies the source's whole stream buffer at the start of the next
decode, after which the loop trims the copy to the shared prefix with
``seq_rm``. A copy owns its cells, so freeing, shifting or overwriting one
slot never touches another: cancellation, eviction and context shift stay
per slot. The copy costs one stream's KV bytes of memory traffic, far less
than evaluating ``min_gain`` (32) tokens.

Requests that arrive together with the same prefix would all evaluate it
side by side. Instead a *follower* waits (its prompt is not put into
batches) while the *leader* slot evaluates the shared part, then copies it;
that is never slower, since the leader gets the batch room the follower
would have taken. A leader that is cancelled or fails releases its
followers, which copy what was done (if it is worth it) and go on alone.

A slot whose cache went through a context shift holds KV that no fresh
evaluation would give beyond its kept tokens (it attended to discarded
ones), so other slots share at most those (``exact``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyllama import _native
from pyllama.engine.jobs import GenerateJob
from pyllama.engine.media import reuse_floor
from pyllama.engine.slots import Slot, common_prefix

MIN_GAIN = 32
"""Tokens a copy must save over the slot's own cached prefix to be made."""


def shared_prefix(tokens: Sequence[int], job: GenerateJob, limit: int) -> int:
    """How many of ``tokens`` ``job`` can take as its prompt's prefix: at most
    ``limit``, and never ending inside an image (its cells are one unit)."""
    return reuse_floor(job.media, min(common_prefix(tokens, job.prompt), limit))


@dataclass(eq=False)
class _Follow:
    leader: Slot
    leader_job: GenerateJob
    n: int  # how much of the prompt the leader will have evaluated


class PrefixSharer:
    """Decides and performs the copies; the loop calls ``admit`` for each
    admitted request, ``step`` before building a batch, ``holds`` to skip
    a waiting follower, ``shifted`` after a context shift and ``release``
    when a slot's request ends."""

    def __init__(self, ctx: _native.Context, slots: Sequence[Slot], enabled: bool = True,
                 min_gain: int = MIN_GAIN) -> None:
        self.ctx = ctx
        self.slots = slots
        self.enabled = enabled and len(slots) > 1
        self.min_gain = max(1, min_gain)
        self.exact: dict[int, int] = {}  # seq -> tokens of its cache equal to a fresh evaluation
        self.follows: dict[int, _Follow] = {}  # follower seq -> what it waits for
        self.n_copies = 0
        self.n_tokens_shared = 0

    # ---- bookkeeping ----------------------------------------------------------------

    def usable(self, slot: Slot) -> int:
        """How much of ``slot.cache`` another slot may take."""
        return min(len(slot.cache), self.exact.get(slot.seq, len(slot.cache)))

    def shifted(self, slot: Slot, n_keep: int) -> None:
        self.exact[slot.seq] = min(self.exact.get(slot.seq, n_keep), n_keep)

    def release(self, slot: Slot) -> None:
        self.follows.pop(slot.seq, None)

    def holds(self, slot: Slot) -> bool:
        """True while the slot waits for its leader: leave it out of batches."""
        return slot.seq in self.follows

    # ---- admission ------------------------------------------------------------------

    def admit(self, slot: Slot, job: GenerateJob, n_common: int) -> int:
        """After the loop trimmed ``slot`` to its own ``n_common`` cached
        tokens: copy a longer prefix from another slot now, or follow a
        slot that is evaluating one. Returns the tokens the slot holds."""
        if self.exact.get(slot.seq, len(slot.cache) + 1) >= len(slot.cache):
            self.exact.pop(slot.seq, None)  # trimmed below its shift point: exact again
        if not self.enabled:
            return n_common
        limit = len(job.prompt) - 1  # the last prompt token is always evaluated
        best: Slot | None = None
        best_n = n_common
        for other in self.slots:
            if other is slot or other.lora != job.lora:
                continue
            n = shared_prefix(other.cache[:self.usable(other)], job, limit)
            if n > best_n:
                best, best_n = other, n
        leader = self._leader_for(slot, job, max(best_n, n_common), limit)
        if leader is not None:
            self.follows[slot.seq] = leader
            return n_common
        if best is not None and best_n >= n_common + self.min_gain:
            return self._copy(best, slot, best_n)
        return n_common

    def _leader_for(self, slot: Slot, job: GenerateJob, have: int, limit: int) -> _Follow | None:
        """A slot still evaluating a prompt that shares more with ``job``
        than anything cached now (by at least ``min_gain``)."""
        found: _Follow | None = None
        for other in self.slots:
            lead = other.job
            if other is slot or lead is None or not lead.prefilling or other.lora != job.lora:
                continue
            if other.seq in self.follows or other.seq in self.exact:
                continue
            n = shared_prefix(lead.prompt, job, limit)
            if n >= have + self.min_gain and n > len(other.cache) and (found is None or n > found.n):
                found = _Follow(other, lead, n)
        return found

    # ---- each step --------------------------------------------------------------------

    def step(self) -> None:
        """Resolve followers whose leader got far enough, or went away."""
        for seq, follow in list(self.follows.items()):
            slot = self.slots[seq]
            job = slot.job
            lead = follow.leader
            if job is None:
                del self.follows[seq]
                continue
            still_leading = lead.job is follow.leader_job and follow.leader_job.prefilling
            if still_leading and len(lead.cache) < follow.n and lead.seq not in self.follows:
                continue
            del self.follows[seq]
            n = shared_prefix(lead.cache[:self.usable(lead)], job, follow.n)
            if lead.lora == job.lora and n >= len(slot.cache) + self.min_gain:
                job.n_cached = self._copy(lead, slot, n)

    def _copy(self, source: Slot, dest: Slot, n: int) -> int:
        """Give ``dest`` the first ``n`` cells of ``source`` (KV and tokens)."""
        self.ctx.seq_cp(source.seq, dest.seq)
        if not self.ctx.seq_rm(dest.seq, n, -1):
            self.ctx.seq_rm(dest.seq, -1, -1)
            dest.cache.clear()
            return 0
        dest.cache[:] = source.cache[:n]
        self.exact.pop(dest.seq, None)
        self.n_copies += 1
        self.n_tokens_shared += n
        return n
