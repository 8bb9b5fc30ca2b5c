"""Command-line parsing with the rules `ollama` users know (Go's cobra/pflag):
flags anywhere among the arguments, ``--`` ends the flags, ``--flag=value``
and ``--flag value``, ``-f value``/``-fvalue``, booleans as ``--flag`` or
``--flag=false``, and a flag with an implied value (``--think``) that takes
another value only after ``=`` so ``--think "Hi"`` leaves "Hi" as the prompt.

argparse cannot express the last two, refuses intermixed parsing with
subcommands, and words its errors differently, so the table below is parsed
here and the help text is rendered from the same table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class UsageError(Exception):
    """A command line that does not parse; printed as ``Error: <message>``."""


class HelpRequested(Exception):
    """``-h``/``--help`` was given: print the command's help and exit 0."""


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class Flag:
    """One flag. ``kind`` is bool, string or int; ``implied`` is the value a
    bare ``--name`` gives a string flag (pflag's NoOptDefVal)."""

    name: str
    help: str
    kind: str = "bool"
    short: str = ""
    default: Any = None
    implied: str | None = None
    hidden: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def convert(self, text: str) -> Any:
        if self.kind == "bool":
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise UsageError(f'invalid argument "{text}" for "{self._spelling}" flag: not a boolean (true or false)')
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise UsageError(f'invalid argument "{text}" for "{self._spelling}" flag: not an integer') from None
        return text

    @property
    def _spelling(self) -> str:
        return f"-{self.short}, --{self.name}" if self.short else f"--{self.name}"

    @property
    def takes_value(self) -> bool:
        """Whether ``--name`` alone consumes the next argument."""
        return self.kind != "bool" and self.implied is None


@dataclass(frozen=True)
class Command:
    """One subcommand: what its help prints and how many arguments it takes."""

    name: str
    use: str
    short: str
    run: Callable[..., int] | None = None
    flags: tuple[Flag, ...] = ()
    aliases: tuple[str, ...] = ()
    min_args: int = 0
    max_args: int | None = None
    env: tuple[tuple[str, str], ...] = ()
    hidden: bool = False

    def check_count(self, args: Sequence[str]) -> None:
        """cobra's ExactArgs / MinimumNArgs messages."""
        n = len(args)
        if self.max_args is not None and self.max_args == self.min_args and n != self.min_args:
            raise UsageError(f"accepts {self.min_args} arg(s), received {n}")
        if n < self.min_args:
            raise UsageError(f"requires at least {self.min_args} arg(s), only received {n}")
        if self.max_args is not None and n > self.max_args:
            raise UsageError(f"accepts at most {self.max_args} arg(s), received {n}")


def parse(flags: Sequence[Flag], tokens: Sequence[str]) -> argparse.Namespace:
    """Split ``tokens`` into flag values and positionals (``ns.args``).

    ``ns.changed`` holds the dests that were given on the command line.
    """
    by_long = {f.name: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
    values: dict[str, Any] = {f.dest: False if f.kind == "bool" and f.default is None else f.default for f in flags}
    changed: set[str] = set()
    positionals: list[str] = []

    def set_value(flag: Flag, text: str) -> None:
        values[flag.dest] = flag.convert(text)
        changed.add(flag.dest)

    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            positionals.extend(tokens[i:])
            break
        if token.startswith("--"):
            name, eq, text = token[2:].partition("=")
            if name == "help":
                raise HelpRequested
            flag = by_long.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: --{name}")
            if eq:
                set_value(flag, text)
            elif not flag.takes_value:
                set_value(flag, "true" if flag.kind == "bool" else str(flag.implied))
            elif i < len(tokens):
                set_value(flag, tokens[i])
                i += 1
            else:
                raise UsageError(f"flag needs an argument: --{name}")
        elif token.startswith("-") and token != "-":
            i = _shorthands(token, tokens, i, by_short, set_value)
        else:
            positionals.append(token)
    return argparse.Namespace(**values, args=positionals, changed=changed)


def _shorthands(token: str, tokens: Sequence[str], i: int, by_short: dict[str, Flag],
                set_value: Callable[[Flag, str], None]) -> int:
    """``-v``, ``-vh`` (booleans together), ``-fFILE``, ``-f=FILE`` or ``-f FILE``."""
    letters = token[1:]
    j = 0
    while j < len(letters):
        letter = letters[j]
        rest = letters[j + 1:]
        if letter == "h":
            raise HelpRequested
        flag = by_short.get(letter)
        if flag is None:
            raise UsageError(f"unknown shorthand flag: '{letter}' in {token}")
        if rest.startswith("="):
            set_value(flag, rest[1:])
            return i
        if not flag.takes_value:
            set_value(flag, "true" if flag.kind == "bool" else str(flag.implied))
            j += 1
            continue
        if rest:
            set_value(flag, rest)
        elif i < len(tokens):
            set_value(flag, tokens[i])
            i += 1
        else:
            raise UsageError(f"flag needs an argument: '{letter}' in -{letter}")
        return i
    return i


def split_command(argv: Sequence[str], names: dict[str, Command]) -> tuple[Command | None, list[str]]:
    """The subcommand is the first argument that is neither a flag nor a flag's
    value (so ``pyllama --keepalive 5m run m`` is ``run``'s ``--keepalive``, as with cobra)."""
    valued = {spelling for c in names.values() for f in c.flags if f.takes_value
              for spelling in (f"--{f.name}", f"-{f.short}" if f.short else "")} - {""}
    skip = False
    for index, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token == "--":
            break
        if token in valued:
            skip = True
        elif not token.startswith("-"):
            command = names.get(token)
            if command is None:
                return None, list(argv)
            return command, [*argv[:index], *argv[index + 1:]]
    return None, list(argv)


# ---- help text, laid out as cobra prints it -------------------------------------------------------


def _flag_lines(flags: Sequence[Flag], command_name: str) -> list[str]:
    shown = [f for f in flags if not f.hidden] + [Flag("help", f"help for {command_name}", short="h")]
    rows = []
    for flag in sorted(shown, key=lambda f: f.name):
        left = f"  -{flag.short}, --{flag.name}" if flag.short else f"      --{flag.name}"
        if flag.kind != "bool":
            left += f" {flag.kind}"
        if flag.implied is not None:
            left += f'[="{flag.implied}"]'
        text = flag.help
        if flag.default not in (None, "", 0, False):
            text += f' (default "{flag.default}")' if flag.kind == "string" else f" (default {flag.default})"
        rows.append((left, text))
    width = max(len(left) for left, _ in rows)
    return [f"{left.ljust(width)}   {text}" for left, text in rows]


def _env_lines(env: Sequence[tuple[str, str]]) -> list[str]:
    if not env:
        return []
    return ["", "Environment Variables:", *(f"      {name:<27}   {text}" for name, text in env)]


def command_help(program: str, command: Command) -> str:
    """``pyllama CMD --help``."""
    use = f"{program} {command.use}"
    lines = [command.short, "", "Usage:", f"  {use} [flags]"]
    if command.aliases:
        lines += ["", "Aliases:", "  " + ", ".join((command.name, *command.aliases))]
    lines += ["", "Flags:", *_flag_lines(command.flags, command.name)]
    lines += _env_lines(command.env)
    return "\n".join(lines) + "\n"


def root_help(program: str, short: str, commands: Sequence[Command], flags: Sequence[Flag]) -> str:
    """``pyllama --help``: the commands in the order ``ollama`` lists them."""
    visible = [c for c in commands if not c.hidden]
    pad = max(11, *(len(c.name) for c in visible))
    lines = [short, "", "Usage:", f"  {program} [flags]", f"  {program} [command]", "", "Available Commands:"]
    lines += [f"  {c.name.ljust(pad)} {c.short}" for c in visible]
    lines += [f"  {'help'.ljust(pad)} Help about any command"]
    lines += ["", "Flags:", *_flag_lines(flags, program), "",
              f'Use "{program} [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"
