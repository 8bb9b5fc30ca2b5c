"""The `pyllama` command: Ollama's commands and flags (see docs/cli.md),
parsed by ``cli.flags`` and run against the server over HTTP."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence

from pyllama import __version__
from pyllama.cli import models
from pyllama.cli.client import CLIError, Client
from pyllama.cli.flags import (
    Command,
    Flag,
    HelpRequested,
    UsageError,
    command_help,
    parse,
    root_help,
    split_command,
)

PROGRAM = "pyllama"
SHORT = "Large language model runner"

HOST_ENV = (("PYLLAMA_HOST", "IP Address for the pyllama server (default 127.0.0.1:11434); falls back to OLLAMA_HOST"),
            ("PYLLAMA_API_KEY", "API key sent to a server started with PYLLAMA_API_KEYS"))

#: serve's flags and the variables they set (ours; `ollama serve` reads only the environment).
SERVE_FLAGS = {
    "host": ("PYLLAMA_HOST", "IP address and port to listen on"),
    "models": ("PYLLAMA_MODELS", "The path to the models directory"),
    "keep-alive": ("PYLLAMA_KEEP_ALIVE", "The duration that models stay loaded in memory"),
    "num-parallel": ("PYLLAMA_NUM_PARALLEL", "Maximum number of parallel requests per model"),
    "max-loaded-models": ("PYLLAMA_MAX_LOADED_MODELS", "Maximum number of loaded models"),
    "max-queue": ("PYLLAMA_MAX_QUEUE", "Maximum number of queued requests"),
    "context-length": ("PYLLAMA_CONTEXT_LENGTH", "Context length to use unless otherwise specified"),
    "metrics": ("PYLLAMA_METRICS", "Serve Prometheus metrics at /metrics (1) or not (0)"),
    "origins": ("PYLLAMA_ORIGINS", "A comma separated list of allowed origins"),
    "flash-attention": ("PYLLAMA_FLASH_ATTENTION", "Enable (1) or disable (0) flash attention"),
    "kv-cache-type": ("PYLLAMA_KV_CACHE_TYPE", "Quantization type for the K/V cache (f16, q8_0, q4_0)"),
    "rpc": ("PYLLAMA_RPC_SERVERS", "Comma-separated host:port of RPC servers to split models across"),
}

SERVE_ENV = (
    ("PYLLAMA_HOST", "IP Address for the pyllama server (default 127.0.0.1:11434)"),
    ("PYLLAMA_CONTEXT_LENGTH", "Context length to use unless otherwise specified (default: 4096)"),
    ("PYLLAMA_KEEP_ALIVE", 'The duration that models stay loaded in memory (default "5m")'),
    ("PYLLAMA_MAX_LOADED_MODELS", "Maximum number of loaded models (default: memory decides)"),
    ("PYLLAMA_MAX_QUEUE", "Maximum number of queued requests (default: 512)"),
    ("PYLLAMA_MODELS", "The path to the models directory (default ~/.pyllama/models)"),
    ("PYLLAMA_NUM_PARALLEL", "Maximum number of parallel requests per model (default: 4, or 1 when that does not fit memory)"),
    ("PYLLAMA_NOPRUNE", "Do not prune model blobs on startup"),
    ("PYLLAMA_METRICS", "Serve Prometheus metrics at /metrics (default: on, off on a public address "
                        "without API keys)"),
    ("PYLLAMA_API_KEYS", "Comma separated API keys; when set every route but / and /api/version needs one"),
    ("PYLLAMA_API_KEYS_FILE", "File with one API key per line, re-read on SIGHUP"),
    ("PYLLAMA_ORIGINS", "A comma separated list of allowed origins"),
    ("PYLLAMA_FLASH_ATTENTION", "Enable (1) or disable (0) flash attention"),
    ("PYLLAMA_KV_CACHE_TYPE", "Quantization type for the K/V cache (default: f16)"),
    ("PYLLAMA_PROMPT_CACHE_MIB", "Host memory per model for reused conversations' KV states (default: 1024)"),
    ("PYLLAMA_NUM_THREADS", "Decode threads per model runner (default: all cores)"),
    ("PYLLAMA_RPC_SERVERS", "Comma-separated host:port of `rpc-server`s whose devices models are split across"),
    ("PYLLAMA_TENSOR_SPLIT", "Shares of the offloaded layers per device, e.g. 1,1 (default: by free memory)"),
    ("", "Each PYLLAMA_X falls back to OLLAMA_X when unset."),
)

INSECURE = Flag("insecure", "Use an insecure registry")
VERBOSE = Flag("verbose", "Show timings for response")
NOWORDWRAP = Flag("nowordwrap", "Don't wrap words to the next line automatically")


def _run(args: argparse.Namespace, client: Client) -> int:
    from pyllama.cli.run import run

    return run(args, client)


def _serve(args: argparse.Namespace, client: Client | None) -> int:
    from pyllama.cli.serve import serve
    from pyllama.server.auth import ApiKeysError

    overrides = {var: getattr(args, name.replace("-", "_")) for name, (var, _) in SERVE_FLAGS.items()}
    try:
        return serve({var: value for var, value in overrides.items() if value is not None}, verbose=args.verbose)
    except ApiKeysError as exc:  # an unreadable PYLLAMA_API_KEYS_FILE, before the server starts
        print(f"Error: {exc}", file=sys.stderr)
        return 1


def _rpc_server(args: argparse.Namespace, client: Client | None) -> int:
    import re

    from pyllama.rpc import server

    devices = [d for d in re.split(r"[,/]+", args.device or "") if d]
    cache_dir = args.cache_dir or (server.default_cache_dir() if args.cache else None)
    return server.run(args.host, args.port, threads=args.threads, devices=devices, cache_dir=cache_dir)


RPC_SERVER_FLAGS = (
    Flag("host", "Host to bind to (anything but 127.0.0.1 lets others in: the protocol has no authentication)",
         kind="string", short="H", default="127.0.0.1"),
    Flag("port", "Port to bind to", kind="int", short="p", default=50052),
    Flag("threads", "Threads for the CPU device (default: half the cores)", kind="int", short="t"),
    Flag("device", "Comma-separated devices to serve (default: the GPUs, else the CPU)", kind="string",
         short="d"),
    Flag("cache", "Keep received tensors in a local file cache ($LLAMA_CACHE/rpc or ~/.cache/llama.cpp/rpc)",
         short="c"),
    Flag("cache-dir", "Keep received tensors in this directory (implies --cache)", kind="string"),
)

COMMANDS = (
    Command("serve", "serve", "Start pyllama", _serve, aliases=("start",), max_args=0, env=SERVE_ENV, flags=(
        *(Flag(name, f"{text} (sets {var})", kind="string") for name, (var, text) in SERVE_FLAGS.items()),
        Flag("verbose", "Log every request"),
    )),
    Command("rpc-server", "rpc-server", "Serve this machine's devices to other hosts (llama.cpp RPC)",
            _rpc_server, max_args=0, flags=RPC_SERVER_FLAGS),
    Command("create", "create MODEL", "Create a model", models.cmd_create, min_args=1, max_args=1, env=HOST_ENV,
            flags=(Flag("file", 'Name of the Modelfile (default "Modelfile")', kind="string", short="f"),
                   Flag("quantize", "Quantize model to this level (e.g. q4_K_M)", kind="string", short="q"),
                   Flag("draft-quantize", "Quantize draft model to this level", kind="string", hidden=True),
                   Flag("experimental", "Enable experimental safetensors model creation", hidden=True))),
    Command("show", "show MODEL", "Show information for a model", models.cmd_show, min_args=1, max_args=1,
            env=HOST_ENV, flags=(
                Flag("license", "Show license of a model"), Flag("modelfile", "Show Modelfile of a model"),
                Flag("parameters", "Show parameters of a model"), Flag("template", "Show template of a model"),
                Flag("system", "Show system message of a model"),
                Flag("verbose", "Show detailed model information", short="v"))),
    Command("run", "run MODEL [PROMPT]", "Run a model", _run, min_args=1, env=(
        *HOST_ENV, ("PYLLAMA_NOHISTORY", "Do not preserve readline history; falls back to OLLAMA_NOHISTORY")),
            flags=(Flag("keepalive", "Duration to keep a model loaded (e.g. 5m)", kind="string"), VERBOSE, INSECURE,
                   NOWORDWRAP, Flag("format", "Response format (e.g. json)", kind="string", default=""),
                   Flag("think", "Enable thinking mode: true/false or high/medium/low for supported models",
                        kind="string", implied="true"),
                   Flag("hidethinking", "Hide thinking output (if provided)"),
                   Flag("truncate", "For embedding models: truncate inputs exceeding context length "
                        "(default: true). Set --truncate=false to error instead"),
                   Flag("dimensions", "Truncate output embeddings to specified dimension (embedding models only)",
                        kind="int", default=0))),
    Command("stop", "stop MODEL", "Stop a running model", models.cmd_stop, min_args=1, max_args=1, env=HOST_ENV),
    Command("pull", "pull MODEL", "Pull a model from a registry", models.cmd_pull, min_args=1, max_args=1,
            env=HOST_ENV, flags=(INSECURE,)),
    Command("push", "push MODEL", "Push a model to a registry", models.cmd_push, min_args=1, max_args=1,
            env=HOST_ENV, flags=(INSECURE,)),
    Command("list", "list", "List models", models.cmd_list, aliases=("ls",), env=HOST_ENV),
    Command("ps", "ps", "List running models", models.cmd_ps, env=HOST_ENV),
    Command("cp", "cp SOURCE DESTINATION", "Copy a model", models.cmd_cp, min_args=2, max_args=2, env=HOST_ENV),
    Command("rm", "rm MODEL [MODEL...]", "Remove a model", models.cmd_rm, min_args=1, env=HOST_ENV),
)

ROOT_FLAGS = (Flag("version", "Show version information", short="v"),)

NAMES = {name: c for c in COMMANDS for name in (c.name, *c.aliases)}


def _unknown(name: str) -> UsageError:
    message = f'unknown command "{name}" for "{PROGRAM}"'
    close = difflib.get_close_matches(name, list(NAMES), n=3, cutoff=0.6)
    if close:
        message += "\n\nDid you mean this?\n" + "".join(f"\t{c}\n" for c in close)
    return UsageError(message)


def _help_topic(args: Sequence[str]) -> str:
    """``pyllama help [COMMAND]``."""
    if not args:
        return root_help(PROGRAM, SHORT, COMMANDS, ROOT_FLAGS)
    command = NAMES.get(args[0])
    if command is None:
        return f"Unknown help topic [`{args[0]}`]\n" + root_help(PROGRAM, SHORT, COMMANDS, ROOT_FLAGS)
    return command_help(PROGRAM, command)


def _root(argv: list[str]) -> int:
    """``pyllama`` with no command: ``help [COMMAND]``, ``--version`` or the help text."""
    first = next((a for a in argv[: argv.index("--") if "--" in argv else len(argv)] if not a.startswith("-")), None)
    if first == "help":
        sys.stdout.write(_help_topic([a for a in argv[argv.index("help") + 1:] if not a.startswith("-")]))
        return 0
    if first is not None:
        raise _unknown(first)
    try:
        root = parse(ROOT_FLAGS, argv)
    except HelpRequested:
        root = argparse.Namespace(version=False, args=[])
    if root.args:
        raise _unknown(root.args[0])
    if root.version:
        # This package's version: the server's /api/version names the Ollama API level it speaks.
        print(f"{PROGRAM} version is {__version__}")
    else:
        sys.stdout.write(root_help(PROGRAM, SHORT, COMMANDS, ROOT_FLAGS))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = split_command(argv, NAMES)
    try:
        if command is None:
            return _root(argv)
        try:
            args = parse(command.flags, rest)
        except HelpRequested:
            sys.stdout.write(command_help(PROGRAM, command))
            return 0
        command.check_count(args.args)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    assert command.run is not None
    if command.name in ("serve", "rpc-server"):
        return command.run(args, None)
    client = Client()
    try:
        return command.run(args, client)
    except CLIError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
