"""Wire types of OpenAI's Responses API (/v1/responses), as Ollama speaks it.

Requests decode leniently (unknown fields such as ``include``, ``store``,
``tool_choice``, ``metadata`` are ignored, as Ollama does); a field of the
wrong type is a 400 naming it. ``input`` and its items' ``content`` /
``output`` vary in JSON type, so they arrive as ``Any`` and each item is
converted to its Struct by the route, which names the item in errors.

Responses follow Ollama's objects: the response object writes every field
(nulls included) in Ollama's order; output items and stream events write
only the fields of their kind.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pyllama.server.schemas_openai import V1Body

# -- requests -------------------------------------------------------------------


class Typed(msgspec.Struct, kw_only=True):
    """Input items, content parts and tools name their kind in ``type`` first."""

    type: str = ""


class InputText(Typed):
    """``input_text`` and ``output_text`` content parts (history text)."""

    text: str = ""


class InputImage(Typed):
    detail: str = ""
    file_id: str = ""
    image_url: str = ""


class InputMessage(Typed):
    role: str = ""
    content: Any = None


class FunctionCallInput(Typed):
    """An earlier call of the model's, sent back as history (``arguments`` a JSON string)."""

    id: str = ""
    call_id: str = ""
    name: str = ""
    arguments: str = ""


class FunctionCallOutputInput(Typed):
    """A tool result: ``output`` is a string or a list of content parts."""

    call_id: str = ""
    output: Any = None


class SummaryText(msgspec.Struct, kw_only=True):
    type: str = "summary_text"
    text: str = ""


class ReasoningInput(Typed):
    """Earlier reasoning; Ollama carries the text in ``encrypted_content`` (plain text)."""

    id: str = ""
    summary: list[SummaryText] | None = None
    encrypted_content: str = ""


class Reasoning(msgspec.Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class TextFormat(Typed):
    name: str = ""
    schema: Any = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None


class FunctionTool(Typed):
    """Responses' flat tool form; echoed with ``description``/``strict``/``parameters`` as null when absent."""

    name: str = ""
    description: str | None = None
    strict: bool | None = None
    parameters: dict[str, Any] | None = None


class ResponsesRequest(V1Body, kw_only=True):
    input: Any = None
    instructions: str = ""
    tools: list[FunctionTool] | None = None
    max_output_tokens: int | None = None
    reasoning: Reasoning | None = None
    text: TextConfig | None = None
    truncation: str | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    background: bool | None = None


# -- responses ------------------------------------------------------------------


class OutputText(msgspec.Struct, kw_only=True):
    type: str = "output_text"
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class MessageItem(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message"
    status: str
    role: str = "assistant"
    content: list[OutputText]


class FunctionCallItem(msgspec.Struct, kw_only=True):
    id: str
    type: str = "function_call"
    status: str
    call_id: str
    name: str
    arguments: str


class ReasoningItem(msgspec.Struct, kw_only=True):
    """``encrypted_content`` is the plain reasoning text (Ollama's choice), unset (left out) while streaming."""

    id: str
    type: str = "reasoning"
    summary: list[SummaryText] = []
    encrypted_content: str | msgspec.UnsetType = msgspec.UNSET


OutputItem = MessageItem | FunctionCallItem | ReasoningItem


class IncompleteDetails(msgspec.Struct, kw_only=True):
    reason: str


class ResponseError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class InputTokensDetails(msgspec.Struct, kw_only=True):
    cached_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    reasoning_tokens: int = 0


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)


class ReasoningEcho(msgspec.Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class TextFormatEcho(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``text.format`` as given: ``type`` always, the other fields when they were set."""

    type: str
    name: str = ""
    schema: Any = None
    strict: bool | None = None


class TextEcho(msgspec.Struct, kw_only=True):
    format: TextFormatEcho


class ResponseObject(msgspec.Struct, kw_only=True):
    """The response, in Ollama's field order; what it does not support is written as its fixed value."""

    id: str
    object: str = "response"
    created_at: int
    completed_at: int | None = None
    status: str
    incomplete_details: IncompleteDetails | None = None
    model: str
    previous_response_id: str | None = None
    instructions: str | None = None
    output: list[OutputItem]
    error: ResponseError | None = None
    tools: list[FunctionTool]
    tool_choice: str = "auto"
    truncation: str = "disabled"
    parallel_tool_calls: bool = True
    text: TextEcho
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    temperature: float = 1.0
    reasoning: ReasoningEcho | None = None
    usage: Usage | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    store: bool = False
    background: bool = False
    service_tier: str = "default"
    metadata: dict[str, Any] = {}
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None


# -- stream events (``type`` doubles as the SSE event name) ----------------------------


class Event(msgspec.Struct, kw_only=True):
    type: str
    sequence_number: int


class ResponseEvent(Event, kw_only=True):
    """response.created / in_progress / completed / incomplete / failed."""

    response: ResponseObject


class OutputItemEvent(Event, kw_only=True):
    output_index: int
    item: OutputItem


class ItemEvent(Event, kw_only=True):
    item_id: str
    output_index: int


class ContentEvent(ItemEvent, kw_only=True):
    content_index: int


class ContentPartEvent(ContentEvent, kw_only=True):
    part: OutputText


class TextDeltaEvent(ContentEvent, kw_only=True):
    delta: str
    logprobs: list[Any] = []


class TextDoneEvent(ContentEvent, kw_only=True):
    text: str
    logprobs: list[Any] = []


class SummaryEvent(ItemEvent, kw_only=True):
    summary_index: int


class SummaryDeltaEvent(SummaryEvent, kw_only=True):
    delta: str


class SummaryDoneEvent(SummaryEvent, kw_only=True):
    text: str


class ArgumentsDeltaEvent(ItemEvent, kw_only=True):
    delta: str


class ArgumentsDoneEvent(ItemEvent, kw_only=True):
    arguments: str
