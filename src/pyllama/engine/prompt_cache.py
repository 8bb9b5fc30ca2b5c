"""Host-memory prompt cache: slot states kept after their slot is reused.

With more users than slots, a slot's KV is overwritten by the next request
and a returning user would evaluate the whole conversation again. Before a
slot's cached tokens are discarded, the loop saves the slot's KV state
(``state_seq_get``) here, keyed by its tokens (and adapter scales). When a
request is admitted and an entry shares a longer prefix with its prompt
than any slot does (by ``min_gain`` tokens), the entry is restored into the
slot (``state_seq_set``) and trimmed to the shared prefix; it then leaves
the cache, since the slot holds it now and is saved again (with what
followed) when its cells are next taken. So a conversation costs one entry,
not one per turn.

Entries are kept least recently used first within a byte budget
(``PYLLAMA_PROMPT_CACHE_MIB``); one entry never holds a prefix of another
(the longer one is kept). Only states equal to a fresh evaluation are
saved: not a slot whose cache went through a context shift.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.jobs import GenerateJob
from pyllama.engine.prefix_share import MIN_GAIN
from pyllama.engine.prefix_share import shared_prefix
from pyllama.engine.slots import Slot, common_prefix

log = logging.getLogger(__name__)

MIN_TOKENS = 64
"""Shorter caches are not worth saving: evaluating them again is cheap."""


@dataclass(eq=False)
class _Entry:
    tokens: npt.NDArray[np.int32]
    lora: tuple[float, ...]
    state: bytes


class PromptCache:
    """LRU of slot states within ``budget`` bytes (0 turns it off)."""

    def __init__(self, ctx: _native.Context, budget: int, min_gain: int = MIN_GAIN) -> None:
        self.ctx = ctx
        self.budget = max(0, budget)
        self.min_gain = max(1, min_gain)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._ids = 0
        self.bytes = 0
        self.n_saved = 0
        self.n_restored = 0
        self.n_tokens_restored = 0

    def __len__(self) -> int:
        return len(self._entries)

    # ---- saving ---------------------------------------------------------------------

    def save(self, slot: Slot, exact: int, incoming: GenerateJob, n_kept: int) -> None:
        """Keep ``slot``'s state before its cache is cut to ``n_kept`` tokens
        for ``incoming``; ``exact`` is how much of the cache a fresh
        evaluation would give. Nothing is saved when the cut is small (a
        conversation going on in its own slot). Entries ``incoming`` may
        restore are never evicted for it."""
        n = len(slot.cache)
        if self.budget == 0 or n < MIN_TOKENS or exact < n or n - n_kept < self.min_gain:
            return
        tokens = np.asarray(slot.cache, dtype=np.int32)
        wanted = {key for key, entry in self._entries.items()
                  if common_prefix(entry.tokens, incoming.prompt) >= self.min_gain}
        for key, entry in list(self._entries.items()):
            if entry.lora != slot.lora:
                continue
            shared = common_prefix(entry.tokens, tokens)
            if shared == n:  # already held (as this or a longer entry)
                self._entries.move_to_end(key)
                return
            if shared == len(entry.tokens):  # the new state extends this one
                self._drop(key)
        try:
            state = self.ctx.state_seq_get(slot.seq)
        except _native.LlamaError as exc:
            log.warning("prompt cache: saving slot %d failed: %s", slot.seq, exc)
            return
        spare = sum(len(self._entries[key].state) for key in wanted if key in self._entries)
        if spare + len(state) > self.budget:
            return
        for key in [k for k in self._entries if k not in wanted]:  # least recently used first
            if self.bytes + len(state) <= self.budget:
                break
            self._drop(key)
        self._ids += 1
        self._entries[self._ids] = _Entry(tokens, slot.lora, state)
        self.bytes += len(state)
        self.n_saved += 1

    def _drop(self, key: int) -> None:
        self.bytes -= len(self._entries.pop(key).state)

    # ---- restoring ------------------------------------------------------------------

    def restore(self, slot: Slot, job: GenerateJob, n_have: int) -> int:
        """Restore the entry sharing the longest prefix with ``job``'s
        prompt into ``slot`` when it beats the ``n_have`` tokens the slot
        holds by ``min_gain``; returns the tokens the slot holds."""
        if not self._entries:
            return n_have
        limit = len(job.prompt) - 1
        best_key, best_n = -1, n_have
        for key, entry in self._entries.items():
            if entry.lora == job.lora:
                n = shared_prefix(entry.tokens, job, limit)
                if n > best_n:
                    best_key, best_n = key, n
        if best_key < 0 or best_n < n_have + self.min_gain:
            return n_have
        entry = self._entries[best_key]
        try:
            self.ctx.state_seq_set(entry.state, slot.seq)
        except (_native.LlamaError, ValueError) as exc:
            log.warning("prompt cache: restoring into slot %d failed: %s", slot.seq, exc)
            self.ctx.seq_rm(slot.seq, -1, -1)
            slot.cache.clear()
            self._drop(best_key)
            return 0
        if not self.ctx.seq_rm(slot.seq, best_n, -1):
            self.ctx.seq_rm(slot.seq, -1, -1)
            slot.cache.clear()
            return 0
        slot.cache[:] = entry.tokens[:best_n].tolist()
        slot.lora = entry.lora
        self._drop(best_key)
        self.n_restored += 1
        self.n_tokens_restored += best_n
        return best_n
