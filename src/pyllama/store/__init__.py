"""The model store: names, manifests and blobs, Modelfiles, GGUF metadata,
model creation and the registry client."""

from pyllama.store.errors import InvalidRequest, NotFound, RegistryError, StoreError
from pyllama.store.layout import Store, StoredModel
from pyllama.store.model import LocalModel, find_model, load_model
from pyllama.store.names import ModelName, parse_name

__all__ = [
    "InvalidRequest",
    "LocalModel",
    "ModelName",
    "NotFound",
    "RegistryError",
    "Store",
    "StoredModel",
    "StoreError",
    "find_model",
    "load_model",
    "parse_name",
]
