"""The wire types round-trip through msgpack as the runner will send them."""

from __future__ import annotations

import msgspec
import pytest

from pyllama.engine import (
    Chunk,
    Done,
    EmbedRequest,
    Embeddings,
    Event,
    Failure,
    GenerateRequest,
    Request,
    SamplingOptions,
    TokenLogprob,
    TopLogprob,
)


@pytest.mark.parametrize("event", [
    Chunk("hé", [1, 2], [TokenLogprob(1, b"h\xc3", -0.5, [TopLogprob(1, b"h\xc3", -0.5)])]),
    Chunk(),
    Done("stop", prompt_eval_count=3, eval_count=4, total_duration=10, context=[1, 2, 3]),
    Embeddings([[0.25, -0.5]], prompt_eval_count=2),
    Failure("the request was cancelled", "cancelled"),
])
def test_events_round_trip(event: Event) -> None:
    data = msgspec.msgpack.encode(event)
    assert msgspec.msgpack.decode(data, type=Event) == event


@pytest.mark.parametrize("request_", [
    GenerateRequest(prompt="hi"),
    GenerateRequest(prompt=[1, 2, 3], options=SamplingOptions(temperature=0, stop=["\n"], logit_bias={5: -1.0}),
                    logprobs=True, top_logprobs=3, shift=False),
    EmbedRequest(["a", [1, 2]], truncate=False, normalize=False),
])
def test_requests_round_trip(request_: GenerateRequest | EmbedRequest) -> None:
    data = msgspec.msgpack.encode(request_)
    assert msgspec.msgpack.decode(data, type=Request) == request_

