"""`pyllama create`: Modelfile -> blob uploads -> an /api/create body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from pyllama.cli.client import CLIError, Client
from pyllama.store.modelfile import ModelfileError, parse_modelfile, to_create_request


def _upload(client: Client, digest: str, path: Path) -> None:
    """Send a local file to /api/blobs unless the server already has it."""
    try:
        if client.http.head(f"/api/blobs/{digest}").status_code == 200:
            return
        print(f"copying file {digest} 0%")
        with path.open("rb") as fh:
            response = client.http.post(f"/api/blobs/{digest}", content=iter(lambda: fh.read(1 << 20), b""))
    except httpx.ConnectError:
        raise client.unreachable() from None
    if response.status_code >= 400:
        raise CLIError(response.json().get("error", f"uploading {path} failed"))
    print(f"copying file {digest} 100%")


def create_request(client: Client, model: str, modelfile: Path, quantize: str | None,
                   draft_quantize: str | None = None) -> dict[str, Any]:
    """Upload what the Modelfile names and return the /api/create body."""
    if draft_quantize:
        raise CLIError("--draft-quantize is not supported by pyllama: a DRAFT model is used as it was created")
    if not modelfile.is_file():
        raise CLIError(f"open {modelfile}: no such file or directory")
    try:
        plan = to_create_request(parse_modelfile(modelfile.read_text()), modelfile.parent)
    except ModelfileError as exc:
        raise CLIError(str(exc)) from None
    print("gathering model components")
    for digest, path in plan.uploads.items():
        _upload(client, digest, path)
    body = {"model": model, **plan.request}
    if quantize:
        body["quantize"] = quantize
    return body
