"""Slots: which sequence of the KV cache a request uses, and what it holds.

Slot i owns sequence i of the context. A slot remembers the tokens whose KV
it holds after its request ends, so the next request that shares a prefix
with them (the same conversation, the same system prompt) evaluates only
what is new. The pure functions here decide slot choice, prompt truncation
and context shift; the loop applies them to the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pyllama.engine.jobs import GenerateJob


Tokens = Union[Sequence[int], npt.NDArray[np.int32]]


def predict_limit(num_predict: int, n_ctx_slot: int) -> int:
    """How many tokens a request may generate. A negative ``num_predict`` ("no limit", or -2 "fill
    the context") is capped at ten contexts, as Ollama does, so a model that never emits an
    end-of-generation token cannot stream forever through context shifts."""
    return num_predict if num_predict >= 0 else 10 * n_ctx_slot


def common_prefix(a: Tokens, b: Tokens) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(diff[0]) if diff.size else n


@dataclass(eq=False)
class Slot:
    """One sequence of the context. ``cache`` lists the tokens whose KV is
    in the sequence, position i holding cache[i]; ``job`` is the request
    running on it (None when idle)."""

    seq: int
    cache: list[int] = field(default_factory=list)
    job: GenerateJob | None = None
    last_used: int = 0
    lora: tuple[float, ...] = ()  # the adapter scales the cached KV was computed with

    @property
    def idle(self) -> bool:
        return self.job is None


def choose_slot(slots: Sequence[Slot], prompt: Tokens, lora: tuple[float, ...] = ()) -> tuple[Slot, int] | None:
    """The idle slot whose cache shares the longest prefix with ``prompt``
    (ties: least recently used), and that prefix's length; None if all busy.
    A cache computed under other adapter scales shares nothing."""
    best: tuple[Slot, int] | None = None
    for slot in slots:
        if not slot.idle:
            continue
        n = common_prefix(slot.cache, prompt) if slot.lora == lora else 0
        if best is None or n > best[1] or (n == best[1] and slot.last_used < best[0].last_used):
            best = (slot, n)
    return best


def keep_count(num_keep: int, prompt_len: int, has_bos: bool, n_ctx_slot: int) -> int:
    """Tokens kept at the front on truncation and context shift: ``num_keep``
    (negative: the whole prompt) plus the BOS token, leaving at least one
    token that can be dropped."""
    keep = prompt_len if num_keep < 0 else num_keep + (1 if has_bos else 0)
    return max(0, min(keep, prompt_len, n_ctx_slot - 1))


def truncate_prompt(prompt: list[int], limit: int, n_keep: int) -> list[int]:
    """Ollama's rule for a prompt longer than the slot: keep the first
    ``n_keep`` tokens, drop the oldest of the rest until ``limit`` remain."""
    if len(prompt) <= limit:
        return prompt
    drop = len(prompt) - limit
    return prompt[:n_keep] + prompt[n_keep + drop:]


def shift_plan(n_cached: int, n_keep: int) -> int:
    """How many tokens a context shift discards after the kept ones: half of
    the rest (0 means nothing can go and generation must end)."""
    return max(0, (n_cached - n_keep) // 2)
