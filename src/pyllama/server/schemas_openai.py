"""Wire types of the OpenAI-compatible routes (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models).

Requests decode leniently as OpenAI clients send them (unknown fields such
as ``n``, ``user``, ``tool_choice``, ``logit_bias`` are ignored, as Ollama
does); a field of the wrong type is a 400 naming it. Fields whose JSON type
varies (``content``, ``stop``, ``input``, tool-call ``arguments``) arrive as
``Any`` and are checked by the translation code.

Responses follow Ollama's encoding of OpenAI's objects: ``finish_reason``
is always written (null until the end), empty ``reasoning``/``tool_calls``/
``logprobs`` are left out.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pyllama.server.schemas_inference import DebugInfo, Logprob

# -- requests -------------------------------------------------------------------


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str = ""
    arguments: Any = None


class ToolCall(msgspec.Struct, kw_only=True):
    id: str = ""
    type: str = ""
    index: int | None = None
    function: FunctionCall = msgspec.field(default_factory=FunctionCall)


class ChatMessage(msgspec.Struct, kw_only=True):
    role: str = ""
    content: Any = None
    reasoning: str = ""
    tool_calls: list[ToolCall] | None = None
    name: str = ""
    tool_call_id: str = ""


class JsonSchemaFormat(msgspec.Struct, kw_only=True):
    name: str = ""
    schema: Any = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: str = ""
    json_schema: JsonSchemaFormat | None = None


class Reasoning(msgspec.Struct, kw_only=True):
    effort: str = ""


class V1Body(msgspec.Struct, kw_only=True):
    """What every /v1 generation body (chat, completions, responses) may set."""

    model: str = ""
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    lora: list[dict[str, Any]] | None = None  # pyllama's (llama-server's shape): per-request adapter scales


class SamplingBody(V1Body, kw_only=True):
    """The sampling fields /v1/chat/completions and /v1/completions share."""

    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: Any = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class ChatCompletionRequest(SamplingBody, kw_only=True):
    messages: list[ChatMessage] | None = None
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class CompletionRequest(SamplingBody, kw_only=True):
    prompt: str = ""
    suffix: str = ""
    logprobs: int | None = None


class EmbeddingsRequest(msgspec.Struct, kw_only=True):
    model: str = ""
    input: Any = None
    dimensions: int | None = None
    encoding_format: str | None = None


# -- responses ------------------------------------------------------------------


class OutFunction(msgspec.Struct, kw_only=True):
    name: str
    arguments: str


class OutToolCall(msgspec.Struct, kw_only=True):
    id: str
    index: int
    type: str
    function: OutFunction


class OutMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``content`` is always written (also empty); the rest only when set."""

    role: str
    content: str
    reasoning: str = ""
    tool_calls: list[OutToolCall] | None = None


class ChoiceLogprobs(msgspec.Struct, kw_only=True):
    content: list[Logprob]


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Completion(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``chat.completion``, ``chat.completion.chunk`` and ``text_completion`` share this shape;
    ``choices`` are dicts so that a null ``finish_reason`` is still written."""

    id: str
    object: str
    created: int
    model: str
    system_fingerprint: str
    choices: list[dict[str, Any]]
    usage: Usage | None = None
    debug_info: DebugInfo | None = msgspec.field(default=None, name="_debug_info")


class EmbeddingItem(msgspec.Struct, kw_only=True):
    object: str
    embedding: list[float] | str
    index: int


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, kw_only=True):
    object: str
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage


class ModelEntry(msgspec.Struct, kw_only=True):
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(msgspec.Struct, kw_only=True):
    """``data`` is null when the store is empty, as Ollama writes it."""

    object: str
    data: list[ModelEntry] | None


class OpenAIError(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(msgspec.Struct):
    error: OpenAIError
