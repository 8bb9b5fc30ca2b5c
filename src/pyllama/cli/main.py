"""`pyllama` command line: argument parsing and one function per command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from pyllama import __version__
from pyllama.cli.client import CLIError, Client
from pyllama.cli.format import human_age, human_bytes, human_until, table
from pyllama.cli.progress import show_progress

SERVE_FLAGS = {
    "host": "PYLLAMA_HOST", "models": "PYLLAMA_MODELS", "keep_alive": "PYLLAMA_KEEP_ALIVE",
    "num_parallel": "PYLLAMA_NUM_PARALLEL", "max_loaded_models": "PYLLAMA_MAX_LOADED_MODELS",
    "max_queue": "PYLLAMA_MAX_QUEUE", "context_length": "PYLLAMA_CONTEXT_LENGTH",
    "origins": "PYLLAMA_ORIGINS", "flash_attention": "PYLLAMA_FLASH_ATTENTION",
    "kv_cache_type": "PYLLAMA_KV_CACHE_TYPE",
}


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server; flags override PYLLAMA_*/OLLAMA_* variables."""
    import uvicorn

    from pyllama.config import Config

    for flag, var in SERVE_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            os.environ[var] = str(value)
    config = Config.from_env()
    uvicorn.run("pyllama.server.app:create_app", factory=True, host=config.host, port=config.port,
                log_level="warning" if not args.verbose else "info", access_log=args.verbose)
    return 0


def cmd_list(args: argparse.Namespace, client: Client) -> int:
    models = client.request("GET", "/api/tags")["models"]
    rows = [(m["name"], m["digest"][:12], human_bytes(m["size"]), human_age(m["modified_at"])) for m in models]
    print(table(("NAME", "ID", "SIZE", "MODIFIED"), rows))
    return 0


def _processor(model: dict[str, Any]) -> str:
    size, vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
    if size == 0 or vram == 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    cpu = round(100 * (size - vram) / size)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def cmd_ps(args: argparse.Namespace, client: Client) -> int:
    models = client.request("GET", "/api/ps")["models"]
    rows = [(m["name"], m["digest"][:12], human_bytes(m["size"]), _processor(m),
             str(m.get("context_length") or ""), human_until(m["expires_at"])) for m in models]
    print(table(("NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"), rows))
    return 0


def _show_info(info: dict[str, Any]) -> str:
    details = info.get("details") or {}
    model_info = info.get("model_info") or {}
    arch = model_info.get("general.architecture", details.get("family", ""))
    lines = ["  Model"]
    rows = [("architecture", arch), ("parameters", details.get("parameter_size", "")),
            ("context length", model_info.get(f"{arch}.context_length", "")),
            ("embedding length", model_info.get(f"{arch}.embedding_length", "")),
            ("quantization", details.get("quantization_level", ""))]
    lines += [f"    {k:<20}{v}" for k, v in rows if v not in ("", None)]
    if info.get("capabilities"):
        lines += ["", "  Capabilities"] + [f"    {c}" for c in info["capabilities"]]
    if info.get("parameters"):
        lines += ["", "  Parameters"] + [f"    {line}" for line in info["parameters"].splitlines()]
    if info.get("system"):
        lines += ["", "  System"] + [f"    {line}" for line in info["system"].splitlines()[:4]]
    if info.get("license"):
        lines += ["", "  License"] + [f"    {line}" for line in info["license"].splitlines()[:2]]
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, client: Client) -> int:
    info = client.request("POST", "/api/show", {"model": args.model, "verbose": args.verbose})
    for flag in ("license", "modelfile", "parameters", "template", "system"):
        if getattr(args, flag):
            print(info.get(flag, ""))
            return 0
    print(_show_info(info))
    if args.verbose:
        print("\n  Metadata")
        for key, value in sorted((info.get("model_info") or {}).items()):
            print(f"    {key:<40}{json.dumps(value) if not isinstance(value, str) else value}")
    return 0


def _transfer(client: Client, path: str, body: dict[str, Any]) -> int:
    last = show_progress(client.stream(path, body), Console(stderr=True, highlight=False))
    return 0 if last.get("status") == "success" else 1


def cmd_pull(args: argparse.Namespace, client: Client) -> int:
    return _transfer(client, "/api/pull", {"model": args.model, "insecure": args.insecure})


def cmd_push(args: argparse.Namespace, client: Client) -> int:
    return _transfer(client, "/api/push", {"model": args.model, "insecure": args.insecure})


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    from pyllama.cli.create import create_request

    body = create_request(client, args.model, Path(args.file), args.quantize)
    return _transfer(client, "/api/create", body)


def cmd_cp(args: argparse.Namespace, client: Client) -> int:
    client.request("POST", "/api/copy", {"source": args.source, "destination": args.destination})
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    for name in args.models:
        if _loaded(client, name):  # a loaded model is stopped first, as Ollama does
            client.request("POST", "/api/generate", {"model": name, "keep_alive": 0})
        client.request("DELETE", "/api/delete", {"model": name})
        print(f"deleted '{name}'")
    return 0


def _loaded(client: Client, name: str) -> bool:
    try:
        models = client.request("GET", "/api/ps")["models"]
    except CLIError:
        return False
    wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
    return any(m.get("name") in (name, wanted) for m in models)


def cmd_stop(args: argparse.Namespace, client: Client) -> int:
    if not _loaded(client, args.model):
        raise CLIError(f"couldn't find model \"{args.model}\" to stop")
    client.request("POST", "/api/generate", {"model": args.model, "keep_alive": 0})
    return 0


def cmd_run(args: argparse.Namespace, client: Client) -> int:
    from pyllama.cli.run import run

    return run(args, client)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyllama", description="Large language model runner")
    parser.add_argument("-v", "--version", action="store_true", help="show version information")
    sub = parser.add_subparsers(dest="command", metavar="command")

    p = sub.add_parser("serve", aliases=["start"], help="start pyllama")
    for flag in SERVE_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None)
    p.add_argument("--verbose", action="store_true", help="log every request")

    p = sub.add_parser("create", help="create a model from a Modelfile")
    p.add_argument("model")
    p.add_argument("-f", "--file", default="Modelfile", help="name of the Modelfile (default: Modelfile)")
    p.add_argument("-q", "--quantize", default=None, help="quantize model to this level (e.g. q4_K_M)")

    p = sub.add_parser("show", help="show information for a model")
    p.add_argument("model")
    for flag in ("license", "modelfile", "parameters", "template", "system"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="show detailed model information")

    p = sub.add_parser("run", help="run a model")
    p.add_argument("model")
    p.add_argument("prompt", nargs="*")
    p.add_argument("--format", default="", help='response format (e.g. json)')
    p.add_argument("--keepalive", default=None, help="duration to keep a model loaded (e.g. 5m)")
    p.add_argument("--think", nargs="?", const="true", default=None,
                   help="enable thinking; optionally a level: low, medium, high")
    p.add_argument("--hidethinking", action="store_true", help="hide thinking output")
    p.add_argument("--verbose", action="store_true", help="show timings for the response")
    p.add_argument("--nowordwrap", action="store_true", help="don't wrap words")
    p.add_argument("--insecure", action="store_true", help="use an insecure registry")

    p = sub.add_parser("stop", help="stop a running model")
    p.add_argument("model")
    for name in ("pull", "push"):
        p = sub.add_parser(name, help=f"{name} a model {'from' if name == 'pull' else 'to'} a registry")
        p.add_argument("model")
        p.add_argument("--insecure", action="store_true", help="use an insecure registry")
    sub.add_parser("list", aliases=["ls"], help="list models")
    sub.add_parser("ps", help="list running models")
    p = sub.add_parser("cp", help="copy a model")
    p.add_argument("source")
    p.add_argument("destination")
    p = sub.add_parser("rm", help="remove a model")
    p.add_argument("models", nargs="+")
    return parser


COMMANDS = {"list": cmd_list, "ls": cmd_list, "ps": cmd_ps, "show": cmd_show, "pull": cmd_pull,
            "push": cmd_push, "create": cmd_create, "cp": cmd_cp, "rm": cmd_rm, "stop": cmd_stop,
            "run": cmd_run}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"pyllama version is {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("serve", "start"):
        return cmd_serve(args)
    client = Client()
    try:
        return COMMANDS[args.command](args, client)
    except CLIError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
