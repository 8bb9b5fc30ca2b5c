"""llama.cpp's reason for a failed load.

llama.cpp reports why a model would not load only in its log (the native
layer raises a bare "failed to load model"); the log is routed into the
``pyllama.llama_cpp`` logger, so a load wrapped in ``collect_load_errors``
can say why it failed: the runner when it loads the weights, the server
when it loads a vocabulary to render prompts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_MARKERS = ("error loading model:", "failed to apply lora adapter:")


class LoadErrors(logging.Handler):
    """Keeps llama.cpp's error lines while a load runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().strip())

    @property
    def reason(self) -> str:
        """The loader's own reason when it gave one, else its first error line ("" if none)."""
        for line in self.lines:
            for marker in _MARKERS:
                if marker in line:
                    return line.split(marker, 1)[1].strip()
        return self.lines[0] if self.lines else ""


@contextmanager
def collect_load_errors() -> Iterator[LoadErrors]:
    """Collect llama.cpp's error lines for the duration of the block."""
    collector = LoadErrors()
    llama_log = logging.getLogger("pyllama.llama_cpp")
    llama_log.addHandler(collector)
    try:
        yield collector
    finally:
        llama_log.removeHandler(collector)
