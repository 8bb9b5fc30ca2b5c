"""The OpenAPI document at /schema/openapi.json, built from the msgspec types the routes decode.

The handlers read their bodies themselves (``decode_body``), so Litestar's
generator would see no request bodies at all. Here each route names its
request and response types and its API family's error envelope; the JSON
Schemas come from ``msgspec.json.schema_components``, the same types that
decode the bodies, so the document cannot drift from what is accepted. A
test checks that every route the app serves is described.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Response, get

from pyllama.server import (
    schemas_anthropic,
    schemas_inference,
    schemas_manage,
    schemas_openai,
    schemas_rerank,
    schemas_responses,
)
from pyllama.server.bodies import MAX_BODY_BYTES, MAX_DEPTH

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
OPENAPI_PATH = "/schema/openapi.json"
REF = "#/components/schemas/{name}"


# Shapes the handlers write without a Struct of their own, described here for the document.


class ErrorResponse(msgspec.Struct):
    """The Ollama error envelope."""

    error: str


class ProgressResponse(msgspec.Struct, omit_defaults=True):
    """One line of a create/pull/push progress stream (or the whole answer with "stream": false)."""

    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0


class Version(msgspec.Struct):
    version: str


class CloudStatus(msgspec.Struct):
    disabled: bool
    source: str


class Status(msgspec.Struct):
    cloud: CloudStatus


class RunningModel(msgspec.Struct):
    """One /api/ps entry."""

    name: str
    model: str
    size: int
    digest: str
    details: schemas_manage.ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class RunningModels(msgspec.Struct):
    models: list[RunningModel]


class ShowResponse(msgspec.Struct):
    """/api/show: the model's Modelfile, parameters, template, details, model_info and capabilities."""

    modelfile: str = ""
    parameters: str = ""
    template: str = ""
    details: schemas_manage.ModelDetails | None = None
    model_info: dict[str, Any] | None = None
    capabilities: list[str] | None = None


@dataclass(frozen=True)
class Family:
    """An API family: its error envelope and the statuses its routes answer besides success."""

    tag: str
    error: type


OLLAMA = Family("ollama", ErrorResponse)
OPENAI = Family("openai", schemas_openai.OpenAIErrorResponse)
ANTHROPIC = Family("anthropic", schemas_anthropic.ErrorResponse)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    family: Family = OLLAMA
    body: type | None = None
    response: type | None = None
    status: int = 200
    stream: str = ""  # the streamed media type, when the route streams by default or on request
    media: str = "application/json"
    errors: tuple[int, ...] = (400, 404, 500)
    params: tuple[str, ...] = field(default=())


INFERENCE_ERRORS = (400, 404, 413, 499, 500, 503)
BODY_ERRORS = (400, 404, 413, 500)

OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/", "Liveness: answers 'Ollama is running'", response=str, media="text/plain", errors=()),
    Operation("head", "/", "Liveness", errors=()),
    Operation("get", "/api/version", "The Ollama API version served", response=Version, errors=()),
    Operation("head", "/api/version", "The Ollama API version served", errors=()),
    Operation("get", "/api/status", "Cloud status (always disabled)", response=Status, errors=()),
    Operation("post", "/api/create", "Create a model from blobs, a base model or a Modelfile's fields",
              body=schemas_manage.CreateRequest, response=ProgressResponse, stream=NDJSON, errors=BODY_ERRORS),
    Operation("head", "/api/blobs/{digest}", "Whether a blob exists", params=("digest",), errors=(400, 404)),
    Operation("post", "/api/blobs/{digest}", "Upload a blob (the body is the file; its sha256 must match)",
              body=bytes, status=201, params=("digest",), errors=(400, 500)),
    Operation("get", "/api/tags", "List stored models", response=schemas_manage.ListResponse, errors=(500,)),
    Operation("head", "/api/tags", "List stored models", errors=(500,)),
    Operation("post", "/api/show", "A model's details", body=schemas_manage.ModelRequest, response=ShowResponse,
              errors=BODY_ERRORS),
    Operation("post", "/api/copy", "Copy a model under a new name", body=schemas_manage.CopyRequest,
              errors=BODY_ERRORS),
    Operation("delete", "/api/delete", "Delete a model", body=schemas_manage.ModelRequest, errors=BODY_ERRORS),
    Operation("post", "/api/pull", "Pull a model from a registry", body=schemas_manage.ModelRequest,
              response=ProgressResponse, stream=NDJSON, errors=BODY_ERRORS),
    Operation("post", "/api/push", "Push a model to a registry", body=schemas_manage.ModelRequest,
              response=ProgressResponse, stream=NDJSON, errors=BODY_ERRORS),
    Operation("post", "/api/generate", "Generate a completion", body=schemas_inference.GenerateRequest,
              response=schemas_inference.GenerateResponse, stream=NDJSON, errors=INFERENCE_ERRORS),
    Operation("post", "/api/chat", "Generate the next chat message", body=schemas_inference.ChatRequest,
              response=schemas_inference.ChatResponse, stream=NDJSON, errors=INFERENCE_ERRORS),
    Operation("post", "/api/embed", "Embed inputs", body=schemas_inference.EmbedRequest,
              response=schemas_inference.EmbedResponse, errors=INFERENCE_ERRORS),
    Operation("post", "/api/embeddings", "Embed one prompt (legacy)", body=schemas_inference.EmbeddingRequest,
              response=schemas_inference.EmbeddingResponse, errors=INFERENCE_ERRORS),
    Operation("get", "/api/ps", "Loaded models", response=RunningModels, errors=()),
    Operation("post", "/api/rerank", "Rank documents against a query (a reranker model)",
              body=schemas_rerank.RerankRequest, response=schemas_rerank.RerankResponse, errors=INFERENCE_ERRORS),
    Operation("post", "/v1/rerank", "Rank documents, Jina/Cohere style", family=OPENAI,
              body=schemas_rerank.RerankRequest, response=schemas_rerank.RerankResponse, errors=INFERENCE_ERRORS),
    Operation("post", "/rerank", "Rank documents, llama-server's path", family=OPENAI,
              body=schemas_rerank.RerankRequest, response=schemas_rerank.RerankResponse, errors=INFERENCE_ERRORS),
    Operation("post", "/v1/chat/completions", "OpenAI chat completions", family=OPENAI,
              body=schemas_openai.ChatCompletionRequest, response=schemas_openai.Completion, stream=SSE,
              errors=INFERENCE_ERRORS),
    Operation("post", "/v1/completions", "OpenAI completions", family=OPENAI, body=schemas_openai.CompletionRequest,
              response=schemas_openai.Completion, stream=SSE, errors=INFERENCE_ERRORS),
    Operation("post", "/v1/embeddings", "OpenAI embeddings", family=OPENAI, body=schemas_openai.EmbeddingsRequest,
              response=schemas_openai.EmbeddingList, errors=INFERENCE_ERRORS),
    Operation("get", "/v1/models", "OpenAI model list", family=OPENAI, response=schemas_openai.ModelList,
              errors=(500,)),
    Operation("get", "/v1/models/{model}", "One model, OpenAI style", family=OPENAI,
              response=schemas_openai.ModelEntry, params=("model",), errors=(400, 404, 500)),
    Operation("post", "/v1/responses", "OpenAI Responses", family=OPENAI, body=schemas_responses.ResponsesRequest,
              response=schemas_responses.ResponseObject, stream=SSE, errors=INFERENCE_ERRORS),
    Operation("post", "/v1/messages", "Anthropic messages", family=ANTHROPIC, body=schemas_anthropic.MessagesRequest,
              response=schemas_anthropic.MessagesResponse, stream=SSE, errors=INFERENCE_ERRORS),
    Operation("post", "/v1/messages/count_tokens", "Anthropic token count", family=ANTHROPIC,
              body=schemas_anthropic.MessagesRequest, response=schemas_anthropic.TokenCount,
              errors=BODY_ERRORS),
)

_REASONS = {400: "Invalid request", 404: "Model or blob not found", 413: "Request body too large",
            499: "The client went away", 500: "Server error", 503: "Server busy (queue full)"}


def _types() -> list[Any]:
    seen: dict[type, None] = {}
    for op in OPERATIONS:
        for kind in (op.body, op.response, op.family.error):
            if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
                seen.setdefault(kind)
    return list(seen)


def _untagged_unions(cls: type) -> dict[str, tuple[bool, tuple[type, ...]]]:
    """Fields (or list fields: the flag) whose type is a union of untagged Structs: msgspec encodes
    them but cannot describe them, so the document spells them out as ``anyOf``."""
    out: dict[str, tuple[bool, tuple[type, ...]]] = {}
    for info in msgspec.structs.fields(cls):
        kind = info.type
        is_list = typing.get_origin(kind) is list
        if is_list:
            (kind,) = typing.get_args(kind)
        if typing.get_origin(kind) not in (typing.Union, types.UnionType):
            continue
        members = tuple(a for a in typing.get_args(kind) if isinstance(a, type) and issubclass(a, msgspec.Struct))
        if len(members) > 1 and any(m.__struct_config__.tag is None for m in members):
            out[info.encode_name] = (is_list, members)
    return out


def _describable(cls: type, unions: dict[str, Any]) -> type:
    """A twin of ``cls`` whose untagged-union fields are ``Any`` (schema only; never decodes)."""
    fields: list[Any] = []
    for info in msgspec.structs.fields(cls):
        kind = Any if info.encode_name in unions else info.type
        if info.required:
            fields.append((info.name, kind, msgspec.field(name=info.encode_name)))
        elif info.default_factory is not msgspec.NODEFAULT:
            fields.append((info.name, kind, msgspec.field(name=info.encode_name, default_factory=info.default_factory)))
        else:
            fields.append((info.name, kind, msgspec.field(name=info.encode_name, default=info.default)))
    return msgspec.defstruct(cls.__name__, fields, kw_only=True)


def _components(wanted: list[Any]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """JSON Schemas of ``wanted``: a ``$ref`` per type and the shared components."""
    unions = {t: _untagged_unions(t) for t in wanted}
    extra = [m for found in unions.values() for _, members in found.values() for m in members]
    proxies = [_describable(t, unions[t]) if unions[t] else t for t in wanted]
    refs, components = msgspec.json.schema_components([*proxies, *extra], ref_template=REF)
    for t, found in unions.items():
        for name, (is_list, members) in found.items():
            choice = {"anyOf": [{"$ref": REF.format(name=m.__name__)} for m in members]}
            components[t.__name__]["properties"][name] = {"type": "array", "items": choice} if is_list else choice
    return dict(zip(wanted, refs)), components


def _media(schema: dict[str, Any], op: Operation) -> dict[str, Any]:
    content = {op.media: {"schema": schema}}
    if op.stream == NDJSON:
        content[NDJSON] = {"schema": schema}  # with "stream": true (the default) each line is one such object
    elif op.stream == SSE:
        content[SSE] = {"schema": {"type": "string", "description": "with \"stream\": true: server-sent events, "
                                                                   "each data line one JSON event"}}
    return content


@functools.lru_cache(maxsize=1)
def openapi_document(version: str = "") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once)."""
    ref_of, components = _components(_types())
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "tags": [op.family.tag], "operationId": _operation_id(op)}
        if op.params:
            entry["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                   for p in op.params]
        if op.body is bytes:
            entry["requestBody"] = {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        elif op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref_of[op.body]}}}
        responses: dict[str, Any] = {}
        if op.response is str:
            responses[str(op.status)] = {"description": "OK", "content": {op.media: {"schema": {"type": "string"}}}}
        elif op.response is not None:
            responses[str(op.status)] = {"description": "OK", "content": _media(ref_of[op.response], op)}
        else:
            responses[str(op.status)] = {"description": "OK (no body)"}
        for code in op.errors:
            responses[str(code)] = {"description": _REASONS[code],
                                    "content": {"application/json": {"schema": ref_of[op.family.error]}}}
        entry["responses"] = responses
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "pyllama", "version": version or "0",
                 "description": ("The Ollama API plus OpenAI-, Responses- and Anthropic-compatible routes. "
                                 f"JSON bodies: at most {MAX_BODY_BYTES // (1024 * 1024)} MiB, nested at most "
                                 f"{MAX_DEPTH} levels, integers within 64 bits (signed).")},
        "paths": paths,
        "components": {"schemas": components},
    }


def _operation_id(op: Operation) -> str:
    words = op.path.strip("/").replace("{", "").replace("}", "").replace("/", "_").replace(".", "_") or "root"
    return f"{op.method}_{words}"


@get(OPENAPI_PATH, include_in_schema=False)
async def openapi_json() -> Response[bytes]:
    from pyllama.server.app import OLLAMA_API_VERSION

    return Response(content=msgspec.json.encode(openapi_document(OLLAMA_API_VERSION)), media_type="application/json")
