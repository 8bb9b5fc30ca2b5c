"""In-process serving engine: continuous batching over one llama context.

    from pyllama.engine import Engine, GenerateRequest

    with Engine("model.gguf", n_ctx=4096, n_parallel=4) as engine:
        handle = engine.submit(GenerateRequest(prompt="Hello", options=SamplingOptions(num_predict=32)))
        for event in handle:            # or: async for event in handle
            ...

See docs/engine.md.
"""

from pyllama.engine.engine import Engine
from pyllama.engine.errors import EngineClosedError, EngineError, InvalidRequestError
from pyllama.engine.handle import Completion, RequestHandle
from pyllama.engine.options import options_from_mapping, validate_options
from pyllama.engine.types import (
    Chunk,
    Done,
    EmbedRequest,
    Embeddings,
    Event,
    Failure,
    GenerateRequest,
    GrammarTrigger,
    Request,
    RerankRequest,
    SamplingOptions,
    TokenLogprob,
    TopLogprob,
)

__all__ = [
    "Chunk",
    "Completion",
    "Done",
    "EmbedRequest",
    "Embeddings",
    "Engine",
    "EngineClosedError",
    "EngineError",
    "Event",
    "Failure",
    "GenerateRequest",
    "GrammarTrigger",
    "InvalidRequestError",
    "Request",
    "RequestHandle",
    "RerankRequest",
    "SamplingOptions",
    "TokenLogprob",
    "TopLogprob",
    "options_from_mapping",
    "validate_options",
]
