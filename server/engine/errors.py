"""Errors the engine reports as values a caller can act on. The API layer maps them to HTTP statuses."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: `message` is written for the end user, `param` names the request field at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(EngineError):
    """The request cannot be served as asked (too long a prompt, an unknown preset, ...)."""


class ContextOverflow(InvalidRequest):
    """The prompt leaves no room in the context: clients that compact their history look for this one."""


class Overloaded(EngineError):
    """The engine is at capacity; the caller should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GenerationFailed(EngineError):
    """The backend failed while generating."""
