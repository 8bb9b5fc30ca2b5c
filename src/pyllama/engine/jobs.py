"""Per-request state the loop thread keeps while a request runs.

Jobs are built on the submitting thread (tokenized, truncated, sampler
chain and grammar already constructed) so the loop only decodes, samples
and emits. After submission only the loop thread touches a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.handle import RequestHandle
from pyllama.engine.media import MediaSpan
from pyllama.engine.streaming import TextStream
from pyllama.engine.types import EmbedRequest, GenerateRequest


@dataclass(eq=False)
class GenerateJob:
    """A completion in flight. ``next_token`` is the sampled token still to
    be decoded (-1 while the prompt is being evaluated); ``pending`` holds
    what the current batch adds to the slot's cache."""

    handle: RequestHandle
    request: GenerateRequest
    prompt: npt.NDArray[np.int32]
    sampler: _native.Sampler
    stream: TextStream
    n_keep: int
    truncated: bool
    t_submit: int
    order: int
    n_top: int = 0
    want_logprobs: bool = False
    lora: tuple[float, ...] = ()  # the scale of each of the engine's adapters
    media: list[MediaSpan] = field(default_factory=list)  # image/audio chunks of the prompt, in order
    n_cached: int = 0
    generated: list[int] = field(default_factory=list)
    n_sampled: int = 0
    next_token: int = -1
    pending: list[int] = field(default_factory=list)
    pending_prompt: bool = False
    i_batch: int = -1
    t_start: int = 0
    t_prompt_done: int = 0
    n_drafted: int = 0  # speculative decoding: draft tokens the target checked
    n_draft_accepted: int = 0  # ... and the ones it agreed with

    @property
    def prefilling(self) -> bool:
        return self.next_token < 0


@dataclass(eq=False)
class EmbedJob:
    """An embedding request: token lists to pool, filled in as batches finish."""

    handle: RequestHandle
    request: EmbedRequest
    inputs: list[npt.NDArray[np.int32]]
    t_submit: int
    vectors: list[list[float] | None] = field(default_factory=list)
    next_input: int = 0
    n_done: int = 0
    t_start: int = 0

    def __post_init__(self) -> None:
        self.vectors = [None] * len(self.inputs)
