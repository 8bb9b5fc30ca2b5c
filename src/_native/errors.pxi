# Exceptions raised by the bindings. Everything derives from LlamaError so
# callers can catch the family; specific subclasses name the cases the
# engine reacts to (no KV room, aborted decode).

class LlamaError(RuntimeError):
    """A llama.cpp call failed."""


class ModelLoadError(LlamaError):
    """The model file could not be loaded (corrupt, truncated, unsupported)."""


class DecodeError(LlamaError):
    """llama_decode/llama_process returned an error code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class KVCacheFullError(DecodeError):
    """No room in the KV cache for the batch (code 1); memory is unchanged."""


class DecodeAbortedError(DecodeError):
    """The decode was stopped by Context.abort() (code 2)."""


cdef inline int _raise_decode(int rc) except -1:
    if rc == 1:
        raise KVCacheFullError("no KV cache slot for the batch (context full)", rc)
    if rc == 2:
        raise DecodeAbortedError("decode aborted", rc)
    if rc == -1:
        raise DecodeError("invalid batch (positions must continue each sequence without gaps)", rc)
    if rc == -2:
        raise DecodeError("memory allocation for the batch failed", rc)
    if rc == -3:
        raise DecodeError("compute failed", rc)
    raise DecodeError(f"decode failed with code {rc}", rc)


class ProjectorLoadError(ModelLoadError):
    """The multimodal projector (mmproj GGUF) could not be loaded for this model."""


class MediaError(LlamaError, ValueError):
    """Media that cannot be used: empty, undecodable, an unsupported format,
    or a kind (image/audio) the projector does not accept."""


class EncodeError(LlamaError):
    """The projector failed to encode a media chunk."""
