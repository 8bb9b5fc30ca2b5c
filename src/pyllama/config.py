"""Server configuration from the environment.

Every setting is read from ``PYLLAMA_<NAME>`` and falls back to
``OLLAMA_<NAME>`` so that an Ollama user's environment carries over
unchanged.  Values are trimmed of spaces and quotes as Ollama does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 11434
DEFAULT_PROMPT_CACHE_MIB = 1024
"""PYLLAMA_PROMPT_CACHE_MIB's default: a 1,000-token conversation's f16 KV state is ~23 MB for
SmolLM2-135M and ~130 MB for an 8B Llama 3, so 1 GiB keeps ~40 or ~8 of them (docs/engine.md)."""


def _raw(env: Mapping[str, str], name: str) -> str:
    """Return the trimmed value of PYLLAMA_<name>, else OLLAMA_<name>, else ""."""
    for prefix in ("PYLLAMA_", "OLLAMA_"):
        value = env.get(prefix + name)
        if value is not None:
            value = value.strip().strip("\"'").strip()
            if value:
                return value
    return ""


def parse_bool(value: str) -> bool:
    """Go ParseBool semantics, but an unparsable non-empty value counts as true."""
    if not value:
        return False
    lowered = value.lower()
    if lowered in ("0", "f", "false"):
        return False
    return True


def _uint(value: str, default: int) -> int:
    """A non-negative integer; bad values fall back to the default."""
    try:
        number = int(value)
    except ValueError:
        return default
    return number if number >= 0 else default


def parse_host(value: str) -> tuple[str, str, int]:
    """Split an OLLAMA_HOST-style value into (scheme, host, port)."""
    scheme = "http"
    default_port = DEFAULT_PORT
    rest = value or "127.0.0.1"
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        scheme = scheme.lower() or "http"
        default_port = 443 if scheme == "https" else 80
    elif rest in ("ollama.com", "www.ollama.com"):
        scheme, default_port = "https", 443
    rest = rest.split("/", 1)[0]
    host, port = rest, default_port
    if rest.startswith("["):
        close = rest.find("]")
        host = rest[1:close] if close > 0 else rest
        tail = rest[close + 1 :] if close > 0 else ""
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host_part, port_part = rest.split(":")
        host = host_part
        if port_part.isdigit():
            port = int(port_part)
    if not host:
        host = "127.0.0.1"
    return scheme, host, port


@dataclass(frozen=True)
class Config:
    """Settings shared by the server, scheduler, store and CLI."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    models: Path = field(default_factory=lambda: Path.home() / ".pyllama" / "models")
    noprune: bool = False
    no_cloud: bool = False
    origins: tuple[str, ...] = ()
    keep_alive: str = "5m"
    num_parallel: int = 0
    """Slots per runner; 0 (unset): automatic, see pyllama.scheduler.parallel_for."""
    max_loaded_models: int = 0
    max_queue: int = 512
    context_length: int = 0
    flash_attention: bool | None = None
    kv_cache_type: str = "f16"
    prompt_cache_mib: int = DEFAULT_PROMPT_CACHE_MIB
    """Host memory per runner for the states of reused slots (0: off)."""
    thread_wait: str = "auto"
    """OpenMP wait policy of runners' decode threads: "auto" (libgomp's own: spin, then sleep),
    "passive" or "active" (bench/contention_bench.py: passive sleeps at every graph barrier, slow
    on an idle machine; spinning collapses when another process wants a core; docs/engine.md)."""
    runner_watchdog: str = ""  # PYLLAMA_RUNNER_WATCHDOG, parsed by pyllama.runner.watchdog
    rpc_servers: str = ""  # PYLLAMA_RPC_SERVERS (host:port,...), parsed by pyllama.rpc
    tensor_split: str = ""  # PYLLAMA_TENSOR_SPLIT (shares per device), parsed by pyllama.rpc
    generic_tools: bool = True
    """Tools for a model whose template cannot render them: our generic format (on) or Ollama's 400 (off)."""
    metrics: bool | None = None
    """Serve /metrics (PYLLAMA_METRICS); None: on unless bound to a public address without API keys."""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    """PYLLAMA_API_KEYS: any of them unlocks the API (with api_keys_file: either's keys). Never in a repr."""
    api_keys_file: str = ""
    """PYLLAMA_API_KEYS_FILE: one key per line, re-read on SIGHUP."""

    @property
    def base_url(self) -> str:
        """URL a client on this machine uses to reach the server."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        scheme, host, port = parse_host(_raw(env, "HOST"))
        models_raw = _raw(env, "MODELS")
        models = Path(models_raw).expanduser() if models_raw else Path.home() / ".pyllama" / "models"
        origins_raw = _raw(env, "ORIGINS")
        origins = tuple(o.strip() for o in origins_raw.split(",") if o.strip())
        flash_raw = _raw(env, "FLASH_ATTENTION")
        metrics_raw = _raw(env, "METRICS")
        return cls(
            scheme=scheme,
            host=host,
            port=port,
            models=models,
            noprune=parse_bool(_raw(env, "NOPRUNE")),
            no_cloud=parse_bool(_raw(env, "NO_CLOUD")),
            origins=origins,
            metrics=parse_bool(metrics_raw) if metrics_raw else None,
            # Ours alone: Ollama has no API keys, so no OLLAMA_ fallback.
            api_keys=tuple(k.strip() for k in env.get("PYLLAMA_API_KEYS", "").split(",") if k.strip()),
            api_keys_file=env.get("PYLLAMA_API_KEYS_FILE", "").strip(),
            keep_alive=_raw(env, "KEEP_ALIVE") or "5m",
            num_parallel=_uint(_raw(env, "NUM_PARALLEL"), 0),
            max_loaded_models=_uint(_raw(env, "MAX_LOADED_MODELS"), 0),
            max_queue=_uint(_raw(env, "MAX_QUEUE"), 512),
            context_length=_uint(_raw(env, "CONTEXT_LENGTH"), 0),
            flash_attention=parse_bool(flash_raw) if flash_raw else None,
            kv_cache_type=(_raw(env, "KV_CACHE_TYPE") or "f16").lower(),
            prompt_cache_mib=_uint(_raw(env, "PROMPT_CACHE_MIB"), DEFAULT_PROMPT_CACHE_MIB),
            thread_wait=_raw(env, "THREAD_WAIT").lower() or "auto",
            runner_watchdog=_raw(env, "RUNNER_WATCHDOG"),
            generic_tools=parse_bool(_raw(env, "GENERIC_TOOLS") or "1"),
            rpc_servers=_raw(env, "RPC_SERVERS"),
            tensor_split=_raw(env, "TENSOR_SPLIT"),
        )
