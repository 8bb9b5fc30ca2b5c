"""Chat messages in Ollama's shape, and their conversions.

The HTTP layer hands us Ollama-shaped dicts (``role``, ``content``,
``images``, ``thinking``, ``tool_calls`` with object ``arguments``,
``tool_name``, ``tool_call_id``). Go templates get them as
:class:`~pyllama.templates.gotypes.Message` structs; llama.cpp's Jinja
engine wants OpenAI's shape (string arguments, call ids, reasoning_content).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyllama.templates.gotemplate.values import OrderedMap

Msg = Mapping[str, Any]


def generate_messages(prompt: str, *, system: str = "", model_system: str = "",
                      model_messages: Sequence[Msg] = (), images: Sequence[Any] = (),
                      use_model_messages: bool = True) -> list[dict[str, Any]]:
    """The conversation Ollama's /api/generate renders.

    The request ``system`` wins over the model's SYSTEM; the model's MESSAGEs
    are skipped when the request carries ``context``
    (``use_model_messages=False``); the prompt is the final user turn.
    """
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    elif model_system:
        out.append({"role": "system", "content": model_system})
    if use_model_messages:
        out.extend(dict(m) for m in model_messages)
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if images:
        user["images"] = list(images)
    out.append(user)
    return out


def chat_messages(messages: Sequence[Msg], *, model_system: str = "",
                  model_messages: Sequence[Msg] = ()) -> list[dict[str, Any]]:
    """The conversation Ollama's /api/chat renders: model MESSAGEs, then the request's.

    The model's SYSTEM goes first unless the request starts with its own system message.
    """
    out = [dict(m) for m in model_messages] + [dict(m) for m in messages]
    if model_system and not (messages and messages[0].get("role") == "system"):
        out.insert(0, {"role": "system", "content": model_system})
    return out


def tag_images(messages: Sequence[Msg]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Give each image a ``[img-N]`` tag in its message, as Ollama does.

    A ``[img]`` placeholder in the content is replaced by the next tag;
    otherwise the tags are prefixed to the content. Returns the new
    messages and the images in tag order.
    """
    images: list[Any] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        copy = dict(msg)
        content = str(copy.get("content") or "")
        prefix = ""
        for image in copy.get("images") or []:
            tag = f"[img-{len(images)}]"
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
            images.append(image)
        if copy.get("images"):
            copy["content"] = prefix + content
        out.append(copy)
    return out, images


def _arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON string OpenAI-style templates expect."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)


def to_openai_messages(messages: Sequence[Msg]) -> list[dict[str, Any]]:
    """Ollama-shaped messages -> the OpenAI shape llama.cpp's chat templates read.

    Tool calls get ids (``call_<n>`` when the client sent none) and tool
    results are linked to the call they answer: by ``tool_call_id`` if
    given, else by ``tool_name`` to the earliest unanswered call of that name.
    """
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not answered yet
    counter = 0
    for msg in messages:
        role = str(msg.get("role") or "")
        item: dict[str, Any] = {"role": role, "content": str(msg.get("content") or "")}
        if msg.get("thinking"):
            item["reasoning_content"] = str(msg["thinking"])
        calls = []
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            call_id = str(call.get("id") or "") or f"call_{counter}"
            counter += 1
            name = str(fn.get("name") or "")
            calls.append({"type": "function", "id": call_id,
                          "function": {"name": name, "arguments": _arguments_text(fn.get("arguments"))}})
            pending.append((call_id, name))
        if calls:
            item["tool_calls"] = calls
        if role == "tool":
            name = str(msg.get("tool_name") or "")
            call_id = str(msg.get("tool_call_id") or "")
            if not call_id:
                match = next((p for p in pending if not name or p[1] == name), None)
                if match is not None:
                    call_id = match[0]
                    name = name or match[1]
            pending = [p for p in pending if p[0] != call_id]
            if name:
                item["name"] = name
            if call_id:
                item["tool_call_id"] = call_id
        out.append(item)
    return out


def tool_call(name: str, arguments: Any, index: int, call_id: str = "") -> dict[str, Any]:
    """One tool call in Ollama's response shape (arguments as an ordered object)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments, object_pairs_hook=OrderedMap) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = {}
    call: dict[str, Any] = {"id": call_id} if call_id else {}
    call["function"] = {"index": index, "name": name, "arguments": dict(arguments or {})}
    return call
