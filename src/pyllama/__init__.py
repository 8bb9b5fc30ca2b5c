"""pyllama: a local LLM server speaking the Ollama and OpenAI APIs, with
hand-written Cython bindings to llama.cpp (`pyllama._native`)."""

__version__ = "0.1.0"
