"""`pyllama run MODEL [PROMPT]`: a one-shot answer (prompt arguments and/or
piped stdin), an embedding for embedding models, or the interactive REPL."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from pyllama.cli.answer import print_stats, stream_answer
from pyllama.cli.client import CLIError, Client
from pyllama.cli.progress import show_progress
from pyllama.cli.session import Session, attach_media, load_model
from pyllama.keep_alive import KeepAliveError, parse_duration

THINK_LEVELS = ("high", "medium", "low", "max")


def parse_think(raw: str) -> bool | str:
    if raw in ("", "true"):
        return True
    if raw == "false":
        return False
    if raw in THINK_LEVELS:
        return raw
    raise CLIError(f'invalid value for --think: "{raw}" (must be true, false, high, medium, low, or max)')


def parse_format(raw: str) -> Any:
    """``json`` or a JSON schema, as Ollama passes --format through."""
    if not raw:
        return None
    if raw == "json":
        return "json"
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CLIError(f"invalid --format {raw!r}: use json or a JSON schema ({exc})") from None


def ensure_model(client: Client, model: str, insecure: bool) -> dict[str, Any]:
    """`/api/show`; on 404 pull the model first, as Ollama does."""
    try:
        return client.request("POST", "/api/show", {"model": model})
    except CLIError as exc:
        if "not found" not in str(exc):
            raise
    last = show_progress(client.stream("/api/pull", {"model": model, "insecure": insecure}),
                         Console(stderr=True, highlight=False))
    if last.get("status") != "success":
        raise CLIError(f"pulling {model} failed")
    return client.request("POST", "/api/show", {"model": model})


def _session(args: argparse.Namespace) -> Session:
    model = args.args[0]
    keep_alive = args.keepalive or None
    if keep_alive is not None:
        try:
            parse_duration(keep_alive)
        except KeepAliveError as exc:
            raise CLIError(str(exc)) from None
    think = parse_think(args.think) if "think" in args.changed else None
    return Session(model, format=parse_format(args.format), keep_alive=keep_alive, think=think,
                   hide_thinking=args.hidethinking, wrap=not args.nowordwrap, verbose=args.verbose)


def _embed(client: Client, args: argparse.Namespace, session: Session, prompt: str) -> int:
    if not prompt:
        raise CLIError(f'embedding models require input text. Usage: pyllama run {session.model} "your text here"')
    body: dict[str, Any] = {"model": session.model, "input": prompt}
    if session.keep_alive is not None:
        body["keep_alive"] = session.keep_alive
    if "truncate" in args.changed:
        body["truncate"] = args.truncate
    if args.dimensions > 0:
        body["dimensions"] = args.dimensions
    embeddings = client.request("POST", "/api/embed", body).get("embeddings") or []
    if not embeddings:
        raise CLIError("no embeddings returned")
    print(json.dumps(embeddings[0], separators=(",", ":")))
    return 0


def _one_shot(client: Client, session: Session, prompt: str) -> int:
    body: dict[str, Any] = {**session.base(), "prompt": prompt}
    if session.multimodal:
        body["prompt"], images = attach_media(prompt)
        if images:
            body["images"] = images
    printer = session.printer()
    try:
        final = stream_answer(client.stream("/api/generate", body), printer)
    except KeyboardInterrupt:  # Ctrl+C stops the answer quietly, as Ollama does
        print()
        return 0
    if prompt:
        print("\n")
    if session.verbose and final.get("done"):
        print_stats(final)
    return 0


def _show_loaded_messages(session: Session) -> None:
    """A model created with MESSAGE lines (or by /save) shows its conversation first."""
    for message in session.loaded_messages:
        if message.get("role") == "user":
            print(f">>> {message.get('content', '')}")
        elif message.get("role") == "assistant":
            printer = session.printer()
            printer.feed(str(message.get("content") or ""), "")
            print("\n")


def run(args: argparse.Namespace, client: Client) -> int:
    session = _session(args)
    prompts = list(args.args[1:])
    interactive = True
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            prompts.insert(0, piped)
        interactive = False
    prompt = " ".join(prompts)
    if prompts or not sys.stdout.isatty():
        interactive = False

    info = ensure_model(client, session.model, args.insecure)
    capabilities = list(info.get("capabilities") or [])
    session.infer_think(capabilities, "think" in args.changed)
    session.apply_show(info)
    if "embedding" in capabilities:
        return _embed(client, args, session, prompt)
    if "truncate" in args.changed or args.dimensions:
        raise CLIError(f"--truncate and --dimensions are for embedding models; {session.model} is not one")
    if not interactive:
        return _one_shot(client, session, prompt)

    from pyllama.cli.repl import Repl

    load_model(client, session)
    _show_loaded_messages(session)
    return Repl(client, session, capabilities, "think" in args.changed).loop()
