"""Every failure as an error response, in the envelope of the API family that was called.

One mechanism, three envelopes: Ollama's ``{"error": "..."}`` (the app's
default), OpenAI's ``{"error": {"message", "type", ...}}`` (the /v1 routes
and Responses) and Anthropic's ``{"type": "error", "error": {...},
"request_id"}`` (/v1/messages). Each router attaches ``handlers(envelope)``;
the status is the same in every family: client mistakes carry theirs
(400/404), anything unexpected is a 500 with the message, never a
traceback page. Routing misses answer like Go's mux in the Ollama family
(``404 page not found`` as text).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException, ValidationException

from pyllama.ids import new_id
from pyllama.server.schemas_anthropic import ErrorBody, ErrorResponse
from pyllama.server.schemas_openai import OpenAIError, OpenAIErrorResponse
from pyllama.store.errors import StoreError, capped

log = logging.getLogger(__name__)

Envelope = Callable[[str, int], Response[bytes]]
_encoder = msgspec.json.Encoder()
# Anthropic's error type for each status, as Ollama's compat layer maps them.
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}
OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error"}


class RequestError(Exception):
    """A request that cannot be served as sent: the message (capped) and HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(capped(message))
        self.status_code = status_code


def _json(body: Any, status_code: int) -> Response[bytes]:
    return Response(content=_encoder.encode(body), status_code=status_code, media_type="application/json")


def error_response(message: str, status_code: int) -> Response[bytes]:
    """Ollama's envelope."""
    return _json({"error": message}, status_code)


def openai_error(message: str, status_code: int) -> OpenAIErrorResponse:
    return OpenAIErrorResponse(OpenAIError(message=message, type=OPENAI_TYPES.get(status_code, "api_error")))


def openai_error_response(message: str, status_code: int) -> Response[bytes]:
    """OpenAI's envelope, so the ``openai`` client raises NotFoundError/BadRequestError with the message."""
    return _json(openai_error(message, status_code), status_code)


def anthropic_error_response(message: str, status_code: int) -> Response[bytes]:
    """Anthropic's envelope, with a ``req_`` id as Ollama gives."""
    body = ErrorResponse(ErrorBody(ANTHROPIC_TYPES.get(status_code, "api_error"), message), new_id("req", "hex", 24))
    return _json(body, status_code)


def handlers(envelope: Envelope) -> dict[type[Exception], Callable[[Request[Any, Any, Any], Any], Response[bytes]]]:
    """Exception handlers answering in ``envelope``. Every type is mapped on every layer:
    Litestar takes the most specific type over all layers, not the closest layer."""

    def store_error(_: Request[Any, Any, Any], exc: StoreError) -> Response[bytes]:
        return envelope(exc.message, exc.status_code)

    def request_error(_: Request[Any, Any, Any], exc: RequestError) -> Response[bytes]:
        return envelope(str(exc), exc.status_code)

    def http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        return envelope(exc.detail or "invalid request", exc.status_code)

    def internal(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(str(exc) or exc.__class__.__name__, 500)

    out: dict[type[Exception], Callable[[Request[Any, Any, Any], Any], Response[bytes]]] = {
        StoreError: store_error, RequestError: request_error, NotFoundException: http,
        MethodNotAllowedException: http, ValidationException: http, HTTPException: http, Exception: internal,
    }
    if envelope is error_response:  # Go's mux answers routing misses in plain text
        out[NotFoundException] = lambda _, exc: Response(b"404 page not found", status_code=404,
                                                         media_type="text/plain")
        out[MethodNotAllowedException] = lambda _, exc: Response(b"405 method not allowed", status_code=405,
                                                                 media_type="text/plain")
    return out


OLLAMA_HANDLERS = handlers(error_response)
OPENAI_HANDLERS = handlers(openai_error_response)
ANTHROPIC_HANDLERS = handlers(anthropic_error_response)
