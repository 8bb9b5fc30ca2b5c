"""Helpers for the CLI tests: run `python -m pyllama ...` as a user types it."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

from serverutil import clean_env


@dataclass
class CLI:
    host: str
    home: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyllama", *args], input=input, capture_output=True,
                              text=True, timeout=timeout,
                              env=clean_env(PYLLAMA_HOST=self.host, HOME=str(self.home)))

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(PYLLAMA_HOST=self.host, HOME=str(self.home), **extra)

    def terminal(self, *args: str, columns: int = 80) -> Terminal:
        """`pyllama ARGS` on a pseudo-terminal ``columns`` wide (TERM=dumb: no colours)."""
        return Terminal([sys.executable, "-m", "pyllama", *args], self.env(TERM="dumb"), columns=columns)


class Terminal:
    """A process on a pseudo-terminal, read until a marker appears."""

    def __init__(self, args: list[str], env: dict[str, str], columns: int = 80) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buffer = ""

    def read_until(self, marker: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {marker!r}; got {self.buffer[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    assert marker in self.buffer, f"process ended before {marker!r}; got {self.buffer[-2000:]!r}"
                    break
                self.buffer += chunk.decode(errors="replace")
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_all(self, timeout: float = 120) -> str:
        """Everything until the process closes the terminal."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.buffer += chunk.decode(errors="replace")
        out, self.buffer = self.buffer, ""
        return out

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)
