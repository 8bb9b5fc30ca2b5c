"""The interactive `pyllama run` session: Ollama's `>>>` prompt and its
slash commands, with line editing and history from `readline`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pyllama.cli.client import CLIError, Client

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

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


class Repl:
    """One conversation with one model; state is what Ollama's REPL keeps."""

    def __init__(self, client: Client, model: str, base: dict[str, Any], *, verbose: bool = False,
                 hide_thinking: bool = False) -> None:
        self.client = client
        self.model = model
        self.base = dict(base)
        self.verbose = verbose
        self.hide_thinking = hide_thinking
        self.system: str | None = None
        self.options: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []
        self.history = True
        self._setup_readline()

    def _setup_readline(self) -> None:
        try:
            import readline
        except ImportError:  # not on every platform; input() still works
            return
        self._history_file = Path.home() / ".pyllama" / "history"
        try:
            self._history_file.parent.mkdir(parents=True, exist_ok=True)
            if self._history_file.exists():
                readline.read_history_file(self._history_file)
        except OSError:
            pass
        self._readline = readline

    def _save_history(self) -> None:
        readline = getattr(self, "_readline", None)
        if readline is not None and self.history:
            try:
                readline.write_history_file(self._history_file)
            except OSError:
                pass

    def _read(self) -> str | None:
        """One user message; `\"\"\"` opens a block that ends on a line ending in `\"\"\"`."""
        line = input(">>> ")
        if not line.lstrip().startswith('"""'):
            return line
        text = line.lstrip()[3:]
        if text.rstrip().endswith('"""') and len(text.rstrip()) >= 3:
            return text.rstrip()[:-3]
        lines = [text]
        while True:
            more = input("... ")
            if more.rstrip().endswith('"""'):
                lines.append(more.rstrip()[:-3])
                return "\n".join(lines).strip("\n")
            lines.append(more)

    def loop(self) -> int:
        while True:
            try:
                line = self._read()
            except EOFError:
                print()
                self._save_history()
                return 0
            except KeyboardInterrupt:
                print("\nUse Ctrl + d or /bye to exit.")
                continue
            if line is None or not line.strip():
                continue
            if line.startswith("/"):
                try:
                    if self.command(line.strip()) == "exit":
                        self._save_history()
                        return 0
                except CLIError as exc:
                    print(f"Error: {exc}")
                continue
            self.chat(line)

    def chat(self, text: str) -> None:
        from pyllama.cli.run import chat_once, print_stats

        messages = ([{"role": "system", "content": self.system}] if self.system else []) + self.messages
        messages.append({"role": "user", "content": text})
        body = {**self.base, "messages": messages}
        if self.options:
            body["options"] = self.options
        try:
            answer, final = chat_once(self.client, body, self.hide_thinking)
        except KeyboardInterrupt:  # stop this answer, keep the session
            print()
            return
        except CLIError as exc:
            print(f"Error: {exc}")
            return
        self.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        if self.verbose:
            print_stats(final, sys.stdout)
        print()

    def command(self, line: str) -> str | None:
        parts = line.split(maxsplit=2)
        head = parts[0].lower()
        if head in ("/bye", "/exit"):
            return "exit"
        if head in ("/?", "/help"):
            print(SET_HELP if len(parts) > 1 and parts[1] == "set" else
                  SHOW_HELP if len(parts) > 1 and parts[1] == "show" else HELP)
        elif head == "/clear":
            self.messages.clear()
            print("Cleared session context")
        elif head == "/set":
            self._set(parts[1:])
        elif head == "/show":
            self._show(parts[1] if len(parts) > 1 else "")
        elif head == "/load":
            if len(parts) < 2:
                print("Usage:\n  /load <modelname>")
                return None
            self.client.request("POST", "/api/show", {"model": parts[1]})
            self.model = self.base["model"] = parts[1]
            self.messages.clear()
            print(f"Loading model '{parts[1]}'")
        elif head == "/save":
            if len(parts) < 2:
                print("Usage:\n  /save <modelname>")
                return None
            body: dict[str, Any] = {"model": parts[1], "from": self.model, "messages": self.messages}
            if self.system:
                body["system"] = self.system
            if self.options:
                body["parameters"] = self.options
            self.client.request("POST", "/api/create", {**body, "stream": False})
            print(f"Created new model '{parts[1]}'")
        else:
            print(f"Unknown command '{head}'. Type /? for help")
        return None

    def _set(self, args: list[str]) -> None:
        from pyllama.store.options import parse_parameter_text

        if not args:
            print(SET_HELP)
            return
        what = args[0].lower()
        rest = args[1] if len(args) > 1 else ""
        if what == "parameter":
            name, _, value = rest.partition(" ")
            if not name or not value.strip():
                print("Usage: /set parameter <name> <value>")
                return
            try:
                if name == "stop":
                    parsed: Any = value.split()
                else:
                    parsed = parse_parameter_text(name, value.strip())
            except ValueError as exc:
                print(f"Couldn't set parameter: {exc}")
                return
            self.options[name] = parsed
            print(f"Set parameter '{name}' to '{value.strip()}'")
        elif what == "system":
            self.system = rest.strip('"') if rest else ""
            print("Set system message.")
        elif what in ("verbose", "quiet"):
            self.verbose = what == "verbose"
            print("Set 'verbose' mode." if self.verbose else "Set 'quiet' mode.")
        elif what == "format":
            if rest != "json":
                print(f"Invalid or missing format. For 'json' mode use '/set format json'")
                return
            self.base["format"] = "json"
            print("Set format to 'json' mode.")
        elif what == "noformat":
            self.base.pop("format", None)
            print("Disabled format.")
        elif what == "think":
            self.base["think"] = rest if rest in ("low", "medium", "high") else True
            print("Set 'think' mode.")
        elif what == "nothink":
            self.base["think"] = False
            print("Set 'nothink' mode.")
        elif what in ("history", "nohistory"):
            self.history = what == "history"
            print(f"Set '{what}' mode.")
        elif what in ("wordwrap", "nowordwrap"):
            print(f"Set '{what}' mode.")
        else:
            print(f"Unknown command '/set {what}'. Type /? for help")

    def _show(self, what: str) -> None:
        from pyllama.cli.main import _show_info

        info = self.client.request("POST", "/api/show", {"model": self.model})
        if what == "info":
            print(_show_info(info))
        elif what in ("license", "modelfile", "template"):
            print(info.get(what) or f"No {what} was specified for this model.")
        elif what == "parameters":
            lines = [info.get("parameters") or ""]
            lines += [f"{k:<20}{v}" for k, v in self.options.items()]
            text = "\n".join(line for line in lines if line)
            print(text or "No parameters were specified for this model.")
        elif what == "system":
            print(self.system or info.get("system") or "No system message was specified for this model.")
        else:
            print(SHOW_HELP)
