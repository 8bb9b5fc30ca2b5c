"""Wire types of Ollama's inference routes (/api/generate, /api/chat, /api/embed, /api/embeddings, /api/ps).

Requests decode leniently (unknown fields ignored, as Ollama does); a field
of the wrong type is a 400 naming it. Fields whose JSON type varies
(``format``, ``think``, ``keep_alive``, ``input``) arrive as ``Any`` and are checked by the route with Ollama's own words.

Responses are encoded in Ollama's field order with its ``omitempty``
rules: fields without a default (``response``, ``done``,
``message.content``) are always written; zero metrics, empty thinking and
empty lists are left out.
"""

from __future__ import annotations

from typing import Any

import msgspec

# -- requests -------------------------------------------------------------------


class ToolCallFunction(msgspec.Struct, kw_only=True):
    name: str = ""
    arguments: dict[str, Any] = {}
    index: int | None = None


class ToolCall(msgspec.Struct, kw_only=True):
    function: ToolCallFunction
    id: str = ""


class Message(msgspec.Struct, kw_only=True):
    """A chat message; ``arguments`` of a tool call must be an object (a string is a 400)."""

    role: str = ""
    content: str = ""
    thinking: str = ""
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str = ""
    tool_call_id: str = ""


class InferenceRequest(msgspec.Struct, kw_only=True):
    """Fields /api/generate and /api/chat share."""

    model: str = ""
    format: Any = None
    options: dict[str, Any] | None = None
    keep_alive: Any = None
    think: Any = None
    stream: bool | None = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class GenerateRequest(InferenceRequest, kw_only=True):
    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None


class ToolParameters(msgspec.Struct, kw_only=True):
    """The JSON-Schema-like ``parameters`` of a tool, checked for shape only."""

    type: str | list[str] = ""
    defs: dict[str, Any] | None = msgspec.field(default=None, name="$defs")
    items: Any = None
    required: list[str] | None = None
    properties: dict[str, dict[str, Any]] | None = None


class ToolFunction(msgspec.Struct, kw_only=True):
    name: str = ""
    description: str = ""
    parameters: ToolParameters | None = None


class Tool(msgspec.Struct, kw_only=True):
    """A tool definition's shape; the route keeps the client's own dict (key order) for templates."""

    type: str = ""
    items: Any = None
    function: ToolFunction = msgspec.field(default_factory=ToolFunction)


class ChatRequest(InferenceRequest, kw_only=True):
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None


class EmbedRequest(msgspec.Struct, kw_only=True):
    model: str = ""
    input: Any = None
    truncate: bool | None = None
    dimensions: int = 0
    options: dict[str, Any] | None = None
    keep_alive: Any = None


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    """Legacy /api/embeddings."""

    model: str = ""
    prompt: str = ""
    options: dict[str, Any] | None = None
    keep_alive: Any = None


# -- responses ------------------------------------------------------------------


class TopLogprob(msgspec.Struct, kw_only=True, omit_defaults=True):
    token: str
    logprob: float
    bytes: list[int] | None = None


class Logprob(msgspec.Struct, kw_only=True, omit_defaults=True):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] | None = None


class ResponseToolCallFunction(msgspec.Struct, kw_only=True):
    """``index`` is always written, as Ollama does."""

    index: int
    name: str
    arguments: dict[str, Any]


class ResponseToolCall(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str = ""
    function: ResponseToolCallFunction | None = None


class ResponseMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str
    content: str
    thinking: str = ""
    tool_calls: list[ResponseToolCall] | None = None


class DebugInfo(msgspec.Struct, kw_only=True):
    rendered_template: str
    image_count: int


# The final record's metrics (nanoseconds and counts), in Ollama's order; both
# responses write them between their own head and tail fields.
# draft_count and draft_accepted_count are pyllama's: speculative decoding's drafted
# tokens and how many of them the model accepted (left out when 0).
METRIC_NAMES = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration", "draft_count", "draft_accepted_count")
_DEBUG_INFO = ("debug_info", DebugInfo | None, msgspec.field(default=None, name="_debug_info"))


def _final_record(name: str, head: list[Any], tail: list[Any]) -> Any:
    fields = [*head, *((metric, int, 0) for metric in METRIC_NAMES), *tail]
    return msgspec.defstruct(name, fields, kw_only=True, omit_defaults=True, module=__name__)


GenerateResponse = _final_record(
    "GenerateResponse",
    [("model", str), ("created_at", str), ("response", str), ("thinking", str, ""), ("done", bool),
     ("done_reason", str, ""), ("context", list[int] | None, None)],
    [("tool_calls", list[ResponseToolCall] | None, None), ("logprobs", list[Logprob] | None, None), _DEBUG_INFO])

ChatResponse = _final_record(
    "ChatResponse",
    [("model", str), ("created_at", str), ("message", ResponseMessage), ("done", bool), ("done_reason", str, "")],
    [("logprobs", list[Logprob] | None, None), _DEBUG_INFO])


class EmbedResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``embeddings`` is always written (``[]`` for a load-only request)."""

    model: str
    embeddings: list[list[float]]
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    embedding: list[float]


class ErrorLine(msgspec.Struct):
    error: str
