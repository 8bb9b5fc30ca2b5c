"""The model-management commands: list, ps, show, cp, rm, stop, pull, push, create."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from pyllama.cli.client import CLIError, Client
from pyllama.cli.format import human_age, human_bytes, human_until, table
from pyllama.cli.progress import show_progress
from pyllama.cli.show import show_info

SHOW_FIELDS = ("license", "modelfile", "parameters", "system", "template")


def cmd_list(args: argparse.Namespace, client: Client) -> int:
    """``list [PREFIX]``: an optional argument keeps the names that start with it."""
    prefix = args.args[0].lower() if args.args else ""
    models = [m for m in client.request("GET", "/api/tags")["models"] if m["name"].lower().startswith(prefix)]
    rows = [(m["name"], m["digest"][:12], human_bytes(m["size"]), human_age(m["modified_at"])) for m in models]
    print(table(("NAME", "ID", "SIZE", "MODIFIED"), rows))
    return 0


def _processor(model: dict[str, Any]) -> str:
    size, vram = int(model.get("size") or 0), int(model.get("size_vram") or 0)
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = round(100 * (size - vram) / size)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def cmd_ps(args: argparse.Namespace, client: Client) -> int:
    prefix = args.args[0] if args.args else ""
    models = [m for m in client.request("GET", "/api/ps")["models"] if m["name"].startswith(prefix)]
    rows = [(m["name"], m["digest"][:12], human_bytes(m["size"]), _processor(m),
             str(m.get("context_length") or 0), human_until(m["expires_at"])) for m in models]
    print(table(("NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"), rows))
    return 0


def cmd_show(args: argparse.Namespace, client: Client) -> int:
    wanted = [name for name in SHOW_FIELDS if getattr(args, name)]
    if len(wanted) > 1:
        raise CLIError("only one of '--license', '--modelfile', '--parameters', '--system', or '--template' "
                       "can be specified")
    info = client.request("POST", "/api/show", {"model": args.args[0], "verbose": args.verbose})
    if wanted:
        text = info.get(wanted[0]) or ""
        # Ollama ends the license, Modelfile and parameters with a newline, the system and template as stored.
        sys.stdout.write(text + "\n" if wanted[0] in ("license", "modelfile", "parameters") else text)
        return 0
    print(show_info(info, args.verbose))
    return 0


def _transfer(client: Client, path: str, body: dict[str, Any]) -> int:
    last = show_progress(client.stream(path, body), Console(stderr=True, highlight=False))
    return 0 if last.get("status") == "success" else 1


def cmd_pull(args: argparse.Namespace, client: Client) -> int:
    return _transfer(client, "/api/pull", {"model": args.args[0], "insecure": args.insecure})


def cmd_push(args: argparse.Namespace, client: Client) -> int:
    code = _transfer(client, "/api/push", {"model": args.args[0], "insecure": args.insecure})
    if code == 0:
        print(f"\nYou can find your model at:\n\n\t{args.args[0]}")
    return code


def cmd_create(args: argparse.Namespace, client: Client) -> int:
    from pyllama.cli.create import create_request

    if args.experimental:
        raise CLIError("--experimental (creating a model from safetensors) is not supported by pyllama; "
                       "convert the model to GGUF and use FROM with the .gguf file")
    body = create_request(client, args.args[0], Path(args.file or "Modelfile"), args.quantize,
                          args.draft_quantize)
    return _transfer(client, "/api/create", body)


def cmd_cp(args: argparse.Namespace, client: Client) -> int:
    source, destination = args.args
    client.request("POST", "/api/copy", {"source": source, "destination": destination})
    print(f"copied '{source}' to '{destination}'")
    return 0


def unload(client: Client, name: str) -> None:
    """Ollama's way to stop a model: look it up, then a generate with keep_alive 0."""
    client.request("POST", "/api/show", {"model": name})
    client.request("POST", "/api/generate", {"model": name, "keep_alive": 0})


def cmd_rm(args: argparse.Namespace, client: Client) -> int:
    for name in args.args:
        try:  # a loaded model is stopped first
            unload(client, name)
        except CLIError as exc:
            if "not found" not in str(exc).lower():
                print(f"Warning: unable to stop model '{name}'", file=sys.stderr)
        client.request("DELETE", "/api/delete", {"model": name})
        print(f"deleted '{name}'")
    return 0


def cmd_stop(args: argparse.Namespace, client: Client) -> int:
    name = args.args[0]
    try:
        unload(client, name)
    except CLIError as exc:
        if "not found" in str(exc):
            raise CLIError(f"couldn't find model \"{name}\" to stop") from None
        raise
    return 0
