"""Model-management routes: create, blobs, tags, show, copy, delete, pull, push.

The store does the work; capabilities and the TEMPLATE check come from the
templates package, which sits above the store, and are handed to it here.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, delete, post, route
from litestar.datastructures import State

from pyllama.server.checks import decode_body
from pyllama.server.errors import error_response
from pyllama.server.jobs import job_response
from pyllama.server.schemas_manage import CopyRequest, CreateRequest, ListModel, ListResponse, ModelDetails, ModelRequest
from pyllama.store.create import create_model, validate_create
from pyllama.store.errors import InvalidRequest, NotFound, StoreError
from pyllama.store.layout import Store, StoredModel
from pyllama.store.manifest import DIGEST_RE
from pyllama.store.model import find_model, load_model
from pyllama.store.names import ModelName, parse_name, parse_name_or_400
from pyllama.store.registry import pull_model, push_model
from pyllama.store.show import details, format_time, show_response
from pyllama.templates import check_template
from pyllama.templates.capabilities import stored_model_capabilities

def get_store(state: State) -> Store:
    store: Store = state.store
    return store


# -- create & blobs ------------------------------------------------------


@post("/api/create", status_code=200)
async def create(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    store = get_store(state)
    body = await decode_body(request, CreateRequest)
    spec = validate_create(
        model=body.model or body.name,
        from_=body.from_,
        files=body.files,
        adapters=body.adapters,
        draft_files=body.draft_files,
        template=body.template,
        system=body.system,
        license=body.license,
        parameters=body.parameters,
        messages=body.messages,
        quantize=body.quantize or body.quantization,
        renderer=body.renderer,
        parser=body.parser,
        requires=body.requires,
        check_template=check_template,
    )
    for digest in (*spec.files.values(), *spec.adapters.values(), *spec.draft_files.values()):
        if not store.has_blob(digest):
            raise InvalidRequest(f'blob "{digest}" not found')

    def job(emit: Any, cancel: threading.Event) -> None:
        def pull(name: ModelName, emit_: Any) -> None:
            pull_model(store, name, emit_, cancel=cancel)

        create_model(store, spec, emit, pull=pull, cancel=cancel)

    return await job_response(job, body.stream is not False)


@route("/api/blobs/{digest:str}", http_method=["HEAD"], status_code=200)
async def blob_exists(digest: str, state: State) -> Response[bytes]:
    store = get_store(state)
    if not DIGEST_RE.match(digest):
        return error_response("invalid digest format", 400)
    if not store.has_blob(digest):
        return error_response(f'blob "{digest}" not found', 404)
    return Response(content=b"", status_code=200)


@post("/api/blobs/{digest:str}", status_code=201)
async def blob_upload(digest: str, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    store = get_store(state)
    if not DIGEST_RE.match(digest):
        return error_response("invalid digest format", 400)
    if store.has_blob(digest):
        return Response(content=b"", status_code=200)
    writer = store.blob_writer()
    try:
        async for chunk in request.stream():
            writer.write(chunk)
        await anyio.to_thread.run_sync(writer.commit, digest)
    except BaseException:
        writer.abort()
        raise
    return Response(content=b"", status_code=201)


# -- listing & inspection ----------------------------------------------------


def _list_entry(store: Store, stored: StoredModel) -> ListModel:
    name = stored.name.display_shortest
    entry = ListModel(
        name=name,
        model=name,
        modified_at=format_time(stored.mtime),
        size=stored.manifest.total_size(),
        digest=stored.manifest_digest,
        details=ModelDetails(),
    )
    try:
        model = load_model(store, stored.name)
    except (StoreError, OSError):
        # A model with a missing or corrupt layer is still listed, so it can be deleted.
        return entry
    info = model.gguf()
    context = model.config.context_length or (info.arch_key("context_length") if info else 0)
    embedding = model.config.embedding_length or (info.arch_key("embedding_length") if info else 0)
    entry.details = ModelDetails(**details(model, info))
    entry.context_length = context if isinstance(context, int) else 0
    entry.embedding_length = embedding if isinstance(embedding, int) else 0
    entry.capabilities = stored_model_capabilities(model, info) or None
    return entry


def _list_models(store: Store) -> ListResponse:
    stored = sorted(store.iter_models(), key=lambda m: m.mtime, reverse=True)
    return ListResponse(models=[_list_entry(store, m) for m in stored])


@route("/api/tags", http_method=["GET", "HEAD"])
async def tags(state: State) -> Response[bytes]:
    store = get_store(state)
    listing = await anyio.to_thread.run_sync(_list_models, store)
    return Response(content=msgspec.json.encode(listing), media_type="application/json")


@post("/api/show", status_code=200)
async def show(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    store = get_store(state)
    body = await decode_body(request, ModelRequest)
    if not body.target:
        raise InvalidRequest("model is required")
    def build() -> dict[str, Any]:
        model = find_model(store, body.target)
        result = show_response(model, stored_model_capabilities, verbose=body.verbose)
        if body.system:
            result["system"] = body.system
        return result

    result = await anyio.to_thread.run_sync(build)
    return Response(content=msgspec.json.encode(result), media_type="application/json")


# -- copy & delete ------------------------------------------------------------


@post("/api/copy", status_code=200)
async def copy(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    store = get_store(state)
    body = await decode_body(request, CopyRequest)
    try:
        source = parse_name(body.source)
    except ValueError:
        raise InvalidRequest(f'source "{body.source}" is invalid') from None
    try:
        destination = parse_name(body.destination)
    except ValueError:
        raise InvalidRequest(f'destination "{body.destination}" is invalid') from None

    def do_copy() -> None:
        with store.locked():
            try:
                stored = store.get(source)
            except NotFound:
                raise NotFound(f'model "{body.source}" not found') from None
            orphaned = store.write_manifest(destination, stored.raw, stored.manifest)
            if orphaned:
                store.prune_digests(orphaned)

    await anyio.to_thread.run_sync(do_copy)
    return Response(content=b"", status_code=200)


@delete("/api/delete", status_code=200)
async def delete_model(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    store = get_store(state)
    body = await decode_body(request, ModelRequest)
    raw = body.target
    try:
        name = parse_name(raw)
    except ValueError:
        raise InvalidRequest(f'name "{raw}" is invalid') from None
    if not store.exists(name):
        raise NotFound(f"model '{raw}' not found")

    def do_delete() -> None:
        try:
            store.delete(name)
        except NotFound:
            raise NotFound(f"model '{raw}' not found") from None

    await anyio.to_thread.run_sync(do_delete)
    return Response(content=b"", status_code=200)


# -- registry -----------------------------------------------------------------


async def _registry_transfer(request: Request[Any, Any, Any], state: State, transfer: Any) -> Response[Any]:
    """Shared body of pull and push: validate the name, then stream the transfer."""
    store = get_store(state)
    body = await decode_body(request, ModelRequest)
    if not body.target:
        raise InvalidRequest("model is required")
    name = parse_name_or_400(body.target)
    if name.scheme == "http" and not body.insecure:
        raise InvalidRequest("insecure protocol http")
    name = store.resolve(name)

    def job(emit: Any, cancel: threading.Event) -> None:
        transfer(store, name, emit, insecure=body.insecure, cancel=cancel)

    return await job_response(job, body.stream is not False)


@post("/api/pull", status_code=200)
async def pull(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    return await _registry_transfer(request, state, pull_model)


@post("/api/push", status_code=200)
async def push(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    return await _registry_transfer(request, state, push_model)


models_router = Router(
    path="/",
    route_handlers=[create, blob_exists, blob_upload, tags, show, copy, delete_model, pull, push],
)

__all__ = ["models_router"]
