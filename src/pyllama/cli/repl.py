"""The interactive `pyllama run` session: Ollama's `>>>` prompt and its
slash commands, with line editing and history from `readline`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pyllama.cli.client import CLIError, Client
from pyllama.cli.models import cmd_list
from pyllama.cli.session import Session, attach_media, chat_turn, load_model
from pyllama.cli.show import show_info
from pyllama.config import parse_bool
from pyllama.store.names import is_valid_name
from pyllama.options import OPTIONS, parse_parameter_text

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""

SET_HELP = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""

SHOW_HELP = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""

SHORTCUTS_HELP = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit pyllama (/bye)
"""

PARAMETERS_HELP = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""


def _help(text: str) -> None:
    """Ollama writes the help screens to stderr."""
    print(text, file=sys.stderr)


class Repl:
    """One conversation; ``session`` is the state Ollama's REPL keeps."""

    def __init__(self, client: Client, session: Session, capabilities: list[str], think_explicit: bool) -> None:
        self.client = client
        self.session = session
        self.capabilities = capabilities
        self.think_explicit = think_explicit
        self.history = not any(parse_bool(os.environ.get(f"{p}NOHISTORY", "")) for p in ("PYLLAMA_", "OLLAMA_"))
        self._readline: Any = None
        self._history_file = Path.home() / ".pyllama" / "history"
        self._setup_readline()

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # not on every platform; input() still works
            return
        self._readline = readline
        try:
            self._history_file.parent.mkdir(parents=True, exist_ok=True)
            if self._history_file.exists():
                readline.read_history_file(self._history_file)
        except OSError:
            pass

    def _save_history(self) -> None:
        if self._readline is not None and self.history:
            try:
                self._readline.write_history_file(self._history_file)
            except OSError:
                pass

    def _read_block(self, first: str) -> str:
        """The rest of a \"\"\" block: lines until one ends with \"\"\"."""
        lines = [first]
        while True:
            line = input("... ")
            if line.endswith('"""'):
                lines.append(line[:-3])
                return "\n".join(lines)
            lines.append(line)

    def _read(self) -> tuple[str, bool]:
        """One input: (text, whether it was a \"\"\" block, which is never a command)."""
        line = input(">>> ")
        if line.startswith('"""'):
            text = line[3:]
            return (text[:-3] if text.endswith('"""') else self._read_block(text)), True
        return line, False

    def loop(self) -> int:
        while True:
            try:
                line, block = self._read()
            except EOFError:
                print()
                self._save_history()
                return 0
            except KeyboardInterrupt:
                print("\nUse Ctrl + d or /bye to exit.")
                continue
            try:
                if line.startswith("/") and not block:
                    if self.command(line) == "exit":
                        self._save_history()
                        return 0
                elif line:
                    self.chat(line)
            except KeyboardInterrupt:
                print()

    def chat(self, text: str) -> None:
        message: dict[str, Any] = {"role": "user", "content": text}
        if self.session.multimodal:
            try:
                message["content"], images = attach_media(text)
            except CLIError as exc:
                print(f"error: {exc}")
                return
            if images:
                message["images"] = images
        self.session.messages.append(message)
        try:
            answer = chat_turn(self.client, self.session)
        except CLIError as exc:
            if "thinking" not in str(exc) and "think value" not in str(exc):
                raise
            self.session.messages.pop()  # the session goes on without this message
            print(f"error: {exc}")
            return
        if answer is not None:
            self.session.messages.append(answer)

    def command(self, line: str) -> str | None:
        words = line.split()
        head = words[0]
        if head.startswith(("/exit", "/bye")):
            return "exit"
        if head.startswith("/list"):
            cmd_list(argparse.Namespace(args=words[1:2]), self.client)
        elif head.startswith("/load"):
            self._load(words)
        elif head.startswith("/save"):
            self._save(words)
        elif head.startswith("/clear"):
            self.session.messages = ([{"role": "system", "content": self.session.system}]
                                     if self.session.system else [])
            print("Cleared session context")
        elif head.startswith("/set"):
            self._set(line, words)
        elif head.startswith("/show"):
            self._show(words)
        elif head.startswith(("/help", "/?")):
            topic = words[1] if len(words) > 1 else ""
            texts = {"set": SET_HELP, "/set": SET_HELP, "show": SHOW_HELP, "/show": SHOW_HELP,
                     "shortcut": SHORTCUTS_HELP, "shortcuts": SHORTCUTS_HELP}
            if not topic:
                _help(HELP)
            elif topic in texts:
                _help(texts[topic])
        else:
            print(f"Unknown command '{head}'. Type /? for help")
        return None

    def _load(self, words: list[str]) -> None:
        if len(words) != 2:
            print("Usage:\n  /load <modelname>")
            return
        session, name = self.session, words[1]
        print(f"Loading model '{name}'")
        try:
            info = self.client.request("POST", "/api/show", {"model": name})
        except CLIError as exc:
            if "not found" in str(exc):
                print(f"Couldn't find model '{name}'")
                return
            raise
        previous = (session.model, session.messages, session.think, session.parent_model, session.loaded_messages)
        session.model, session.messages = name, []
        session.apply_show(info)
        self.capabilities = list(info.get("capabilities") or [])
        session.infer_think(self.capabilities, self.think_explicit)
        try:
            load_model(self.client, session)
        except CLIError as exc:
            (session.model, session.messages, session.think, session.parent_model, session.loaded_messages) = previous
            if "not found" in str(exc):
                print(f"Couldn't find model '{name}'")
            elif "thinking" in str(exc):
                print(f"error: {exc}")
            else:
                raise

    def _save(self, words: list[str]) -> None:
        if len(words) != 2:
            print("Usage:\n  /save <modelname>")
            return
        name, session = words[1], self.session
        if not is_valid_name(name):
            print(f"error: The model name '{name}' is invalid")
            return
        parent = session.parent_model if is_valid_name(session.parent_model) else ""
        body: dict[str, Any] = {"model": name, "from": parent or session.model, "stream": False}
        if session.system:
            body["system"] = session.system
        if session.options:
            body["parameters"] = session.options
        messages = session.loaded_messages + session.messages
        if messages:
            body["messages"] = messages
        self.client.request("POST", "/api/create", body)
        print(f"Created new model '{name}'")

    def _set(self, line: str, words: list[str]) -> None:
        session = self.session
        if len(words) < 2:
            _help(SET_HELP)
            return
        what = words[1]
        if what in ("history", "nohistory"):
            self.history = what == "history"
        elif what in ("wordwrap", "nowordwrap"):
            session.wrap = what == "wordwrap"
            print(f"Set '{what}' mode.")
        elif what in ("verbose", "quiet"):
            session.verbose = what == "verbose"
            print(f"Set '{what}' mode.")
        elif what in ("think", "nothink"):
            level = words[2] if what == "think" and len(words) > 2 else ""
            session.think = level or (what == "think")
            self.think_explicit = True
            if "thinking" not in self.capabilities:
                print(f'warning: model "{session.model}" does not support thinking output', file=sys.stderr)
            print(f"Set 'think' mode to '{level}'." if level else f"Set '{what}' mode.")
        elif what == "format":
            if len(words) < 3 or words[2] != "json":
                print("Invalid or missing format. For 'json' mode use '/set format json'")
            else:
                session.format = "json"
                print("Set format to 'json' mode.")
        elif what == "noformat":
            session.format = None
            print("Disabled format.")
        elif what == "parameter":
            self._set_parameter(words[2:])
        elif what == "system":
            self._set_system(line, words)
        else:
            print(f"Unknown command '/set {what}'. Type /? for help")

    def _set_parameter(self, words: list[str]) -> None:
        if len(words) < 2:
            _help(PARAMETERS_HELP)
            return
        name, values = words[0], words[1:]
        try:
            spec = OPTIONS.get(name)
            value: Any = (values if spec is not None and spec.type == "list"
                          else parse_parameter_text(name, values[0]))
        except ValueError as exc:
            print(f'Couldn\'t set parameter: "{exc}"')
            return
        self.session.options[name] = value
        print(f"Set parameter '{name}' to '{', '.join(values)}'")

    def _set_system(self, line: str, words: list[str]) -> None:
        if len(words) < 3:
            _help(SET_HELP)
            return
        text = " ".join(words[2:])
        if text.startswith('"""'):
            text = text[3:]
            text = text[:-3] if text.endswith('"""') else self._read_block(text)
        session = self.session
        session.system = text
        message = {"role": "system", "content": text}
        if session.messages and session.messages[-1]["role"] == "system":
            session.messages[-1] = message
        else:
            session.messages.append(message)
        print("Set system message.")

    def _show(self, words: list[str]) -> None:
        if len(words) < 2:
            _help(SHOW_HELP)
            return
        session, what = self.session, words[1]
        body: dict[str, Any] = {"model": session.model}
        if session.system:
            body["system"] = session.system
        if session.options:
            body["options"] = session.options
        info = self.client.request("POST", "/api/show", body)
        if what == "info":
            print(show_info(info), file=sys.stderr)
        elif what == "license":
            print(info.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            print(info.get("modelfile", ""))
        elif what == "parameters":
            print("Model defined parameters:")
            params = info.get("parameters") or ""
            print("\n".join(f"  {line}" for line in params.split("\n")) if params
                  else "  No additional parameters were specified for this model.")
            print()
            if session.options:
                print("User defined parameters:")
                for key, value in session.options.items():
                    shown = "[" + " ".join(map(str, value)) + "]" if isinstance(value, list) else value
                    print(f"  {key:<30} {shown}")
                print()
        elif what == "system":
            text = session.system or info.get("system") or ""
            print(text + "\n" if text else "No system message was specified for this model.")
        elif what == "template":
            print(info.get("template") or "No prompt template was specified for this model.")
        else:
            print(f"Unknown command '/show {what}'. Type /? for help")
