"""OpenAI's error envelope for the /v1 routes.

The same failures the native routes report as ``{"error": "..."}`` keep
their status here but are wrapped as OpenAI clients expect, so the
``openai`` library raises ``NotFoundError``/``BadRequestError`` with the
message. Attach ``OPENAI_EXCEPTION_HANDLERS`` to a router: Litestar uses the
closest layer's handler.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from pyllama.server.errors import RequestError
from pyllama.store.errors import StoreError

log = logging.getLogger(__name__)


class OpenAIError(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(msgspec.Struct):
    error: OpenAIError


def error_type(status_code: int) -> str:
    if status_code == 400:
        return "invalid_request_error"
    if status_code == 404:
        return "not_found_error"
    return "api_error"


def openai_error(message: str, status_code: int) -> OpenAIErrorResponse:
    return OpenAIErrorResponse(OpenAIError(message=message, type=error_type(status_code)))


def openai_error_response(message: str, status_code: int) -> Response[bytes]:
    return Response(content=msgspec.json.encode(openai_error(message, status_code)), status_code=status_code,
                    media_type="application/json")


def _store_error(_: Request[Any, Any, Any], exc: StoreError) -> Response[bytes]:
    return openai_error_response(exc.message, exc.status_code)


def _request_error(_: Request[Any, Any, Any], exc: RequestError) -> Response[bytes]:
    return openai_error_response(str(exc), exc.status_code)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    return openai_error_response(exc.detail or "invalid request", 400)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    return openai_error_response(exc.detail, exc.status_code)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return openai_error_response(str(exc) or exc.__class__.__name__, 500)


OPENAI_EXCEPTION_HANDLERS = {
    StoreError: _store_error,
    RequestError: _request_error,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _internal,
}
