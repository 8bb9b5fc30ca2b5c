"""What the scheduler raises: each error carries the HTTP status it becomes."""

from __future__ import annotations

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"


class SchedulerError(RuntimeError):
    """A request could not be scheduled; ``status_code`` is the HTTP status."""

    status_code = 500

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ServerBusyError(SchedulerError):
    """More than PYLLAMA_MAX_QUEUE requests are waiting."""

    status_code = 503

    def __init__(self) -> None:
        super().__init__(BUSY_MESSAGE)


class ModelLoadError(SchedulerError):
    """The runner could not load the model (``unable to load model: ...``)."""


class InsufficientMemoryError(SchedulerError):
    """The model does not fit in free memory even with every idle model unloaded."""


class SchedulerClosedError(SchedulerError):
    """The scheduler was closed (the server is shutting down)."""
