"""`pyllama run`: a one-shot answer (prompt argument or piped stdin) or the
interactive REPL, both through /api/chat."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pyllama.cli.client import CLIError, Client


def _ensure_model(client: Client, model: str, insecure: bool) -> dict[str, Any]:
    """`/api/show`; on 404 pull the model first, as Ollama does."""
    try:
        return client.request("POST", "/api/show", {"model": model})
    except CLIError as exc:
        if "not found" not in str(exc):
            raise
    from pyllama.cli.progress import show_progress
    from rich.console import Console

    last = show_progress(client.stream("/api/pull", {"model": model, "insecure": insecure}),
                         Console(stderr=True, highlight=False))
    if last.get("status") != "success":
        raise CLIError(f"pulling {model} failed")
    return client.request("POST", "/api/show", {"model": model})


def _think_value(raw: str | None) -> bool | str | None:
    if raw is None:
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if raw not in ("low", "medium", "high"):
        raise CLIError(f"invalid value for --think: {raw!r} (use true, false, low, medium or high)")
    return raw


def print_stats(final: dict[str, Any], out: Any = sys.stderr) -> None:
    """Ollama's --verbose timing block."""
    def secs(ns: int) -> str:
        return f"{ns / 1e9:.6f}s" if ns >= 1e9 else f"{ns / 1e6:.6f}ms"

    rows = [("total duration", secs(final.get("total_duration", 0))),
            ("load duration", secs(final.get("load_duration", 0))),
            ("prompt eval count", f"{final.get('prompt_eval_count', 0)} token(s)"),
            ("prompt eval duration", secs(final.get("prompt_eval_duration", 0)))]
    if final.get("prompt_eval_duration"):
        rows.append(("prompt eval rate",
                     f"{final.get('prompt_eval_count', 0) / (final['prompt_eval_duration'] / 1e9):.2f} tokens/s"))
    rows += [("eval count", f"{final.get('eval_count', 0)} token(s)"),
             ("eval duration", secs(final.get("eval_duration", 0)))]
    if final.get("eval_duration"):
        rows.append(("eval rate", f"{final.get('eval_count', 0) / (final['eval_duration'] / 1e9):.2f} tokens/s"))
    for name, value in rows:
        print(f"{name + ':':<22}{value}", file=out)


def chat_once(client: Client, body: dict[str, Any], hide_thinking: bool) -> tuple[str, dict[str, Any]]:
    """Stream one answer to stdout; returns its text and the final chunk."""
    text: list[str] = []
    final: dict[str, Any] = {}
    thinking = False
    for chunk in client.stream("/api/chat", body):
        message = chunk.get("message") or {}
        if message.get("thinking") and not hide_thinking:
            if not thinking:
                sys.stdout.write("Thinking...\n")
                thinking = True
            sys.stdout.write(message["thinking"])
        if message.get("content"):
            if thinking:
                sys.stdout.write("\n...done thinking.\n\n")
                thinking = False
            sys.stdout.write(message["content"])
            text.append(message["content"])
        sys.stdout.flush()
        if chunk.get("done"):
            final = chunk
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(text), final


def run(args: argparse.Namespace, client: Client) -> int:
    info = _ensure_model(client, args.model, args.insecure)
    think = _think_value(args.think)
    prompt = " ".join(args.prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped}\n\n{prompt}".strip() if prompt else piped.strip()
    if "embedding" in (info.get("capabilities") or []) and "completion" not in (info.get("capabilities") or []):
        result = client.request("POST", "/api/embed", {"model": args.model, "input": prompt})
        print(json.dumps(result["embeddings"][0]))
        return 0
    base: dict[str, Any] = {"model": args.model}
    if args.format:
        base["format"] = args.format
    if args.keepalive is not None:
        base["keep_alive"] = args.keepalive
    if think is not None:
        base["think"] = think
    if prompt or not sys.stdin.isatty():
        if not prompt:  # `run MODEL ""` only loads the model
            client.request("POST", "/api/generate", {**base, "stream": False})
            return 0
        _, final = chat_once(client, {**base, "messages": [{"role": "user", "content": prompt}]},
                             args.hidethinking)
        if args.verbose:
            print_stats(final)
        return 0
    from pyllama.cli.repl import Repl

    return Repl(client, args.model, base, verbose=args.verbose, hide_thinking=args.hidethinking).loop()
