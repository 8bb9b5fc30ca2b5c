"""HTTP server: a Litestar app speaking the Ollama API."""

from pyllama.server.app import create_app

__all__ = ["create_app"]
