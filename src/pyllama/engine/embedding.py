"""Embedding inputs: tokenizing with Ollama's truncation rule, packing
inputs into one batch, and reading the pooled vectors back."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.errors import InvalidRequestError
from pyllama.engine.jobs import EmbedJob

TOO_LONG = "the input length exceeds the context length"


def _special_tokens(model: _native.Model) -> tuple[list[int], list[int]]:
    """The tokens the vocabulary puts before and after every text."""
    head = [model.token_bos] if model.add_bos and model.token_bos is not None else []
    tail: list[int] = []
    if model.add_eos and model.token_eos is not None:
        tail.append(model.token_eos)
    if model.add_sep and model.token_sep is not None:
        tail.append(model.token_sep)
    return head, tail


def prepare_input(model: _native.Model, item: str | Sequence[int], limit: int,
                  truncate: bool) -> npt.NDArray[np.int32]:
    """One input as tokens that fit ``limit``. Too long: cut the text's
    tokens (keeping the special tokens around them) when ``truncate``,
    otherwise refuse with Ollama's message."""
    if isinstance(item, str):
        tokens = model.tokenize(item, add_special=True, parse_special=False)
    else:
        tokens = np.asarray(item, dtype=np.int32).reshape(-1)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= model.n_vocab):
            raise InvalidRequestError(f"input token ids must be in [0, {model.n_vocab})")
    if tokens.size == 0:
        raise InvalidRequestError("an embedding input is empty")
    if tokens.size <= limit:
        return tokens
    if not truncate:
        raise InvalidRequestError(TOO_LONG)
    if not isinstance(item, str):
        return tokens[:limit]
    head, tail = _special_tokens(model)
    body = model.tokenize(item, add_special=False, parse_special=False)
    room = max(1, limit - len(head) - len(tail))
    return np.concatenate([np.asarray(head, np.int32), body[:room], np.asarray(tail, np.int32)])[:limit]


def pack_inputs(jobs: Iterable[EmbedJob], n_batch: int, n_seq: int) -> list[tuple[EmbedJob, int, int]]:
    """Whole inputs, first come first served, that fit one batch of
    ``n_batch`` tokens and ``n_seq`` sequences: (job, input index, seq)."""
    placed: list[tuple[EmbedJob, int, int]] = []
    used = 0
    for job in jobs:
        while job.next_input < len(job.inputs) and len(placed) < n_seq:
            size = int(job.inputs[job.next_input].size)
            if used + size > n_batch:
                return placed
            placed.append((job, job.next_input, len(placed)))
            job.next_input += 1
            used += size
        if len(placed) >= n_seq:
            break
    return placed


def finish_vector(vec: npt.NDArray[np.float32], normalize: bool) -> list[float]:
    """A copy of the pooled vector, L2-normalised when asked; refuses NaN/Inf
    (Ollama answers those with an error rather than sending them)."""
    out = np.asarray(vec, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError("the embedding contains NaN or Inf values")
    if normalize:
        norm = math.sqrt(float(np.dot(out, out)))
        if norm > 0.0:
            out = out / norm
    return [float(x) for x in out]
