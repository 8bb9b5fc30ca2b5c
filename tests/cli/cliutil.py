"""Helpers for the CLI tests: run `python -m pyllama ...` as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from serverutil import SRC_DIR


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYLLAMA_", "OLLAMA_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@dataclass
class CLI:
    host: str
    home: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyllama", *args], input=input, capture_output=True,
                              text=True, timeout=timeout,
                              env=clean_env(PYLLAMA_HOST=self.host, HOME=str(self.home)))


