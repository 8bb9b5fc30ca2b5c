"""Exceptions of the runner client."""

from __future__ import annotations


class RunnerError(RuntimeError):
    """A runner could not be used (not started, gone, or misbehaving)."""


class RunnerLoadError(RunnerError):
    """The runner could not load its model: ``unable to load model: <path>[: reason]``."""


class RunnerDiedError(RunnerError):
    """The runner process exited while requests were in flight."""
