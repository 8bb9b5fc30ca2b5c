"""Exception handlers: every failure becomes Ollama's ``{"error": "..."}``.

Client mistakes carry their status (400/404); routing misses answer like Go's
mux (``404 page not found`` as text); anything unexpected is a 500 with the
message, never a traceback page.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from pyllama.store.errors import StoreError, capped

log = logging.getLogger(__name__)


def error_response(message: str, status_code: int) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode({"error": message}),
        status_code=status_code,
        media_type="application/json",
    )


class RequestError(Exception):
    """A malformed request body (missing, bad JSON, wrong field type); the message is capped."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(capped(message))
        self.status_code = status_code


def _store_error(_: Request[Any, Any, Any], exc: StoreError) -> Response[bytes]:
    return error_response(exc.message, exc.status_code)


def _request_error(_: Request[Any, Any, Any], exc: RequestError) -> Response[bytes]:
    return error_response(str(exc), exc.status_code)


def _not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[bytes]:
    return Response(content=b"404 page not found", status_code=404, media_type="text/plain")


def _method_not_allowed(request: Request[Any, Any, Any], exc: MethodNotAllowedException) -> Response[bytes]:
    return Response(content=b"405 method not allowed", status_code=405, media_type="text/plain")


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    return error_response(exc.detail or "invalid request", 400)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    return error_response(exc.detail, exc.status_code)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(str(exc) or exc.__class__.__name__, HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS = {
    StoreError: _store_error,
    RequestError: _request_error,
    NotFoundException: _not_found,
    MethodNotAllowedException: _method_not_allowed,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _internal,
}
