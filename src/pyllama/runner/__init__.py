"""Runner processes: each loaded model's Engine in its own process.

    client = await RunnerClient.start(LoadSpec(model="m.gguf", n_ctx=4096, n_parallel=2))
    stream = await client.submit(GenerateRequest(prompt="Hi"))
    async for event in stream:
        ...
    await client.close()

A crash in native code kills the runner, not the server: requests in flight
end with ``Failure(kind="runner")``. Frames are msgpack over a socketpair
(``protocol.py``); the process side is ``process.py``.
"""

from pyllama.runner.client import RunnerClient, RunnerStream, describe_exit
from pyllama.runner.errors import RunnerDiedError, RunnerError, RunnerLoadError
from pyllama.runner.memory import MemoryEstimate, available_ram, available_vram, estimate_memory, rss_bytes
from pyllama.runner.protocol import LoadSpec, Ready

__all__ = [
    "LoadSpec",
    "MemoryEstimate",
    "Ready",
    "RunnerClient",
    "RunnerDiedError",
    "RunnerError",
    "RunnerLoadError",
    "RunnerStream",
    "available_ram",
    "available_vram",
    "describe_exit",
    "estimate_memory",
    "rss_bytes",
]
