"""What one `pyllama run` keeps between turns (Ollama's runOptions), and the
request bodies built from it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from pyllama.cli.answer import AnswerPrinter, print_stats, stream_answer
from pyllama.cli.client import Client, CLIError
from pyllama.cli.media import extract_media, is_multimodal


@dataclass
class Session:
    model: str
    format: Any = None
    keep_alive: str | None = None
    think: bool | str | None = None
    hide_thinking: bool = False
    wrap: bool = True
    verbose: bool = False
    system: str = ""
    parent_model: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    loaded_messages: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    multimodal: bool = False  # the model takes images/audio: file paths in a prompt are attached

    def base(self) -> dict[str, Any]:
        """Fields every request of this session carries."""
        body: dict[str, Any] = {"model": self.model}
        if self.format is not None:
            body["format"] = self.format
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.think is not None:
            body["think"] = self.think
        if self.options:
            body["options"] = dict(self.options)
        return body

    def apply_show(self, info: dict[str, Any]) -> None:
        """Remember what /save needs from /api/show: the parent model and the model's MESSAGEs."""
        self.parent_model = str((info.get("details") or {}).get("parent_model") or "")
        self.loaded_messages = list(info.get("messages") or [])
        self.multimodal = is_multimodal(list(info.get("capabilities") or []))

    def infer_think(self, capabilities: list[str], explicit: bool) -> None:
        """A model that can think does unless the user said otherwise (Ollama's default)."""
        if not explicit:
            self.think = True if "thinking" in capabilities else None

    def printer(self) -> AnswerPrinter:
        return AnswerPrinter(sys.stdout, wrap=self.wrap and sys.stdout.isatty(), hide_thinking=self.hide_thinking)


def attach_media(prompt: str) -> tuple[str, list[str]]:
    """The prompt without its media file paths, and those files (base64); a bad file is a CLIError."""
    try:
        return extract_media(prompt)
    except (OSError, ValueError) as exc:
        raise CLIError(f"couldn't process image: {exc}") from None


def load_model(client: Client, session: Session) -> None:
    """A generate request without a prompt loads the model (and fails early on a bad think value)."""
    body = {k: v for k, v in session.base().items() if k in ("model", "keep_alive", "think")}
    for _ in client.stream("/api/generate", body):
        pass


def chat_turn(client: Client, session: Session) -> dict[str, Any] | None:
    """Send the conversation, print the answer; returns the assistant message
    (None when Ctrl+C stopped it)."""
    printer = session.printer()
    try:
        final = stream_answer(client.stream("/api/chat", {**session.base(), "messages": session.messages}), printer)
    except KeyboardInterrupt:
        print()
        return None
    print("\n")
    if session.verbose:
        print_stats(final)
    message: dict[str, Any] = {"role": "assistant", "content": printer.text}
    if printer.thinking:
        message["thinking"] = "".join(printer.thinking)
    return message
