"""The `pyllama` command: Ollama's CLI, talking to the server over HTTP."""

from pyllama.cli.main import main

__all__ = ["main"]
