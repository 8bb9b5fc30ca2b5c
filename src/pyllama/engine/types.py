"""Requests and events of the engine, as msgspec Structs.

These are the types that cross the engine <-> runner boundary (msgpack
frames), so they are array-like, omit defaults and skip the GC: cheap to
encode per token. Events are a tagged union so one decoder reads them all.
"""

from __future__ import annotations

from typing import Union

import msgspec

from pyllama.options import struct_fields


class GrammarTrigger(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """What wakes a lazy grammar, as llama.cpp's ``common_grammar_trigger``:
    ``kind`` "word" (literal text), "pattern" (a regex searched anywhere),
    "pattern_full" (a regex the whole output must match) or "token"
    (``token``, or ``value`` when it is one token)."""

    kind: str
    value: str = ""
    token: int = -1


# Ollama's per-request generation options with Ollama's defaults, one field per
# "sampling" entry of pyllama.options.OPTIONS, plus llama.cpp's tool-call grammar
# settings (from the chat template): a lazy grammar constrains nothing until a
# trigger appears in the output.
SamplingOptions = msgspec.defstruct(
    "SamplingOptions",
    [*struct_fields("sampling"), ("grammar_lazy", bool, False), ("grammar_triggers", list[GrammarTrigger], []),
     ("preserved_tokens", list[str], [])],
    module=__name__, array_like=True, omit_defaults=True, gc=False,
)


class GenerateRequest(msgspec.Struct, tag="generate", array_like=True, omit_defaults=True, gc=False):
    """A completion: a prompt (tokens, or text the engine tokenizes on the
    submitting thread) plus options. ``shift=False`` ends with "length" at
    the slot's context end instead of shifting; ``truncate=False`` rejects a
    prompt longer than the slot's context instead of cutting it."""

    prompt: Union[str, list[int]]
    options: SamplingOptions = msgspec.field(default_factory=SamplingOptions)
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True
    truncate: bool = True
    add_special: bool = True
    images: list[bytes] = []  # images/audio (encoded files) the prompt's [img-N] tags name; needs a projector


class EmbedRequest(msgspec.Struct, tag="embed", array_like=True, omit_defaults=True, gc=False):
    """One vector per input. ``normalize`` L2-normalises (/api/embed does,
    /api/embeddings does not); ``truncate=False`` rejects inputs longer than
    the context instead of cutting them."""

    inputs: list[Union[str, list[int]]]
    truncate: bool = True
    normalize: bool = True


class RerankRequest(msgspec.Struct, tag="rerank", array_like=True, omit_defaults=True, gc=False):
    """Score each document against ``query`` with a reranker (rank pooling).
    The engine builds each pair (the model's rerank template, else
    llama.cpp's BOS query EOS SEP document EOS) and answers ``Embeddings``
    whose vectors are the raw rank outputs, one per document (the relevance
    score is element 0). ``truncate=False`` rejects a pair longer than the
    context instead of cutting its document."""

    query: str
    documents: list[str]
    truncate: bool = True


Request = Union[GenerateRequest, EmbedRequest, RerankRequest]


class TopLogprob(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """One alternative: token id, its bytes (may be half a character) and log-probability."""

    token: int
    piece: bytes
    logprob: float


class TokenLogprob(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """The sampled token's log-probability under the raw logits, and the best alternatives."""

    token: int
    piece: bytes
    logprob: float
    top: list[TopLogprob] = []


class Chunk(msgspec.Struct, tag="chunk", array_like=True, omit_defaults=True, gc=False):
    """Newly generated tokens and the text that is safe to show for them
    (complete characters, nothing that could still become a stop string).
    ``text`` may be empty while bytes are held back."""

    text: str = ""
    tokens: list[int] = []
    logprobs: list[TokenLogprob] = []


class Done(msgspec.Struct, tag="done", array_like=True, omit_defaults=True, gc=False):
    """The final record of a completion; durations are nanoseconds."""

    done_reason: str
    prompt_eval_count: int = 0
    eval_count: int = 0
    load_duration: int = 0
    prompt_eval_duration: int = 0
    eval_duration: int = 0
    total_duration: int = 0
    context: list[int] = []
    cached_tokens: int = 0
    truncated: bool = False
    stop_sequence: str = ""  # the stop string that ended the output, if one did
    draft_count: int = 0  # speculative decoding: drafted tokens the target checked
    draft_accepted_count: int = 0  # ... of which it accepted (and emitted) these


class Embeddings(msgspec.Struct, tag="embeddings", array_like=True, omit_defaults=True, gc=False):
    """The final record of an embedding request: one vector per input, in order."""

    embeddings: list[list[float]]
    prompt_eval_count: int = 0
    load_duration: int = 0
    prompt_eval_duration: int = 0
    total_duration: int = 0


class Failure(msgspec.Struct, tag="failure", array_like=True, omit_defaults=True, gc=False):
    """The request ended without a result. ``kind``: "context" (no room in
    the KV cache), "decode" (llama.cpp or the loop failed), "cancelled",
    "closed" (engine shut down). Bad requests never get this far: ``submit``
    raises InvalidRequestError."""

    message: str
    kind: str = "decode"


Event = Union[Chunk, Done, Embeddings, Failure]
FINAL_EVENTS = (Done, Embeddings, Failure)
