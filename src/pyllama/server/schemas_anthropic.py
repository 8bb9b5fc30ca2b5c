"""Wire types of the Anthropic Messages API (``POST /v1/messages``).

Requests decode leniently, as the other schemas do: unknown fields are
ignored and a field of the wrong type is a 400 naming it. A message's
``content`` may be a string or a list of blocks; the route turns both into
native chat messages the way Ollama's compat layer does.

Responses follow Anthropic's shapes. ``stop_reason``/``stop_sequence`` are
written as ``null`` where Anthropic writes them so (``message_start``); the
block structs leave out what a block type does not carry.
"""

from __future__ import annotations

from typing import Any

import msgspec

# -- requests -------------------------------------------------------------------


class ImageSource(msgspec.Struct, kw_only=True):
    type: str = ""
    media_type: str = ""
    data: str = ""
    url: str = ""


class ContentBlock(msgspec.Struct, kw_only=True):
    """One request block: text, image, tool_use, tool_result or thinking (others are skipped)."""

    type: str = ""
    text: str | None = None
    source: ImageSource | None = None
    id: str = ""
    name: str = ""
    input: dict[str, Any] | None = None
    tool_use_id: str = ""
    content: Any = None
    is_error: bool = False
    thinking: str | None = None
    signature: str = ""


class MessageParam(msgspec.Struct, kw_only=True):
    role: str = ""
    content: str | list[ContentBlock] = ""


class AnthropicTool(msgspec.Struct, kw_only=True):
    """A client tool; ``input_schema`` becomes the native function's ``parameters``."""

    type: str = ""
    name: str = ""
    description: str = ""
    input_schema: dict[str, Any] | None = None


class ThinkingConfig(msgspec.Struct, kw_only=True):
    type: str = ""
    budget_tokens: int = 0


class OutputConfig(msgspec.Struct, kw_only=True):
    effort: str = ""


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: str = ""
    max_tokens: int = 0
    messages: list[MessageParam] | None = None
    system: str | list[ContentBlock] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: Any = None
    thinking: ThinkingConfig | None = None
    metadata: Any = None
    output_config: OutputConfig | None = None


# -- responses ------------------------------------------------------------------


class TextBlock(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class ThinkingBlock(msgspec.Struct, tag_field="type", tag="thinking"):
    thinking: str


class ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


Block = TextBlock | ThinkingBlock | ToolUseBlock


class TokenCount(msgspec.Struct):
    """``/v1/messages/count_tokens``'s answer."""

    input_tokens: int


class Usage(msgspec.Struct):
    input_tokens: int
    output_tokens: int


class MessagesResponse(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[Block]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage


# Streaming events: the SSE event name is the object's ``type``.


class MessageStart(msgspec.Struct, tag_field="type", tag="message_start"):
    message: MessagesResponse


class BlockStart(msgspec.Struct, tag_field="type", tag="content_block_start"):
    index: int
    content_block: Block


class TextDelta(msgspec.Struct, tag_field="type", tag="text_delta"):
    text: str


class ThinkingDelta(msgspec.Struct, tag_field="type", tag="thinking_delta"):
    thinking: str


class InputJSONDelta(msgspec.Struct, tag_field="type", tag="input_json_delta"):
    partial_json: str


class BlockDelta(msgspec.Struct, tag_field="type", tag="content_block_delta"):
    index: int
    delta: TextDelta | ThinkingDelta | InputJSONDelta


class BlockStop(msgspec.Struct, tag_field="type", tag="content_block_stop"):
    index: int


class StopInfo(msgspec.Struct):
    stop_reason: str | None
    stop_sequence: str | None = None


class MessageDelta(msgspec.Struct, tag_field="type", tag="message_delta"):
    delta: StopInfo
    usage: Usage


class MessageStop(msgspec.Struct, tag_field="type", tag="message_stop"):
    pass


class ErrorBody(msgspec.Struct):
    type: str
    message: str


class StreamError(msgspec.Struct, tag_field="type", tag="error"):
    """The event a stream ends with when generation fails after the first byte."""

    error: ErrorBody


class ErrorResponse(msgspec.Struct, tag_field="type", tag="error"):
    error: ErrorBody
    request_id: str


StreamEvent = MessageStart | BlockStart | BlockDelta | BlockStop | MessageDelta | MessageStop | StreamError
