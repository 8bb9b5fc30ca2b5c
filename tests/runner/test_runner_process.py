"""A runner process: handshake, multiplexed streams, cancellation, bad
requests, load failures and being killed mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from pyllama.engine import Chunk, Done, Engine, Failure, GenerateRequest, InvalidRequestError, SamplingOptions
from pyllama.runner import LoadSpec, RunnerClient, RunnerDiedError, RunnerLoadError

PROMPTS = ["The capital of France is", "def fibonacci(n):", "The three primary colors are"]


def _spec(model: Path, **extra: object) -> LoadSpec:
    fields: dict[str, object] = {"n_ctx": 1024, "n_parallel": 2, "n_threads": 1, **extra}
    return LoadSpec(model=str(model), **fields)  # type: ignore[arg-type]


def _request(prompt: str, n: int, **options: object) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=n, **options))


async def _collect(client: RunnerClient, request: GenerateRequest) -> tuple[list[int], object]:
    tokens: list[int] = []
    final = None
    async for event in await client.submit(request):
        if isinstance(event, Chunk):
            tokens.extend(event.tokens)
        else:
            final = event
    return tokens, final


def test_runner_matches_the_in_process_engine(smollm2: Path) -> None:
    with Engine(smollm2, n_ctx=1024, n_parallel=2, n_threads=1) as engine:
        expected = [engine.submit(_request(p, 12)).result().tokens for p in PROMPTS]

    async def main() -> None:
        client = await RunnerClient.start(_spec(smollm2))
        try:
            info = client.info
            assert info is not None and info.pid == client.pid != os.getpid()
            assert (info.n_ctx, info.n_parallel, info.n_ctx_slot) == (1024, 2, 512)
            assert info.model_size > 0 and info.memory > smollm2.stat().st_size and info.rss > 0
            results = await asyncio.gather(*(_collect(client, _request(p, 12)) for p in PROMPTS))
            for (tokens, final), want in zip(results, expected):
                assert isinstance(final, Done) and final.eval_count == 12
                assert tokens == want
            assert client.in_flight == 0
        finally:
            await client.close()
        assert client.process.returncode == 0

    asyncio.run(main())


def test_leaving_a_stream_early_cancels_it(smollm2: Path, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        client = await RunnerClient.start(_spec(smollm2, n_parallel=1))
        try:
            stream = await client.submit(_request("Count:", 400, logit_bias=eog_ban))
            events = []
            async for event in stream:
                events.append(event)
                if sum(len(e.tokens) for e in events if isinstance(e, Chunk)) >= 2:
                    break
            # The only slot is free again: the next request completes.
            tokens, final = await _collect(client, _request("Hi", 3))
            assert isinstance(final, Done) and len(tokens) >= 1
            assert client.in_flight == 0
        finally:
            await client.close()

    asyncio.run(main())


def test_bad_request_is_rejected_before_streaming(smollm2: Path) -> None:
    async def main() -> None:
        client = await RunnerClient.start(_spec(smollm2))
        try:
            with pytest.raises(InvalidRequestError, match="empty"):
                await client.submit(GenerateRequest(prompt=""))
            with pytest.raises(InvalidRequestError, match="temperature"):
                await client.submit(GenerateRequest(prompt="x", options=SamplingOptions(temperature=-1)))
            _, final = await _collect(client, _request("Hello", 2))
            assert isinstance(final, Done)
        finally:
            await client.close()

    asyncio.run(main())


def test_killed_runner_fails_requests_in_flight(smollm2: Path, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        client = await RunnerClient.start(_spec(smollm2))
        try:
            streams = [await client.submit(_request(p, 400, logit_bias=eog_ban)) for p in PROMPTS[:2]]
            first = await streams[0].next()
            assert isinstance(first, Chunk)
            os.kill(client.pid, signal.SIGKILL)
            finals = []
            for stream in streams:
                async for event in stream:
                    final = event
                finals.append(final)
            for final in finals:
                assert isinstance(final, Failure) and final.kind == "runner"
                assert "SIGKILL" in final.message
            assert not client.alive
            with pytest.raises(RunnerDiedError):
                await client.submit(_request("Hi", 2))
        finally:
            await client.close()

    asyncio.run(main())


def test_truncated_gguf_fails_with_llama_cpps_reason(truncated_gguf: Path) -> None:
    async def main() -> None:
        with pytest.raises(RunnerLoadError) as info:
            await RunnerClient.start(_spec(truncated_gguf))
        message = str(info.value)
        assert message.startswith(f"unable to load model: {truncated_gguf}")
        assert "corrupted or incomplete" in message

    asyncio.run(main())


def test_missing_file_fails_to_load(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(RunnerLoadError, match="unable to load model: .*missing.gguf"):
            await RunnerClient.start(_spec(tmp_path / "missing.gguf"))

    asyncio.run(main())


def test_handshake_timeout_kills_the_runner(smollm2: Path) -> None:
    async def main() -> None:
        with pytest.raises(RunnerLoadError, match="timed out"):
            await RunnerClient.start(_spec(smollm2), timeout=0.001)

    asyncio.run(main())


def test_submit_cancelled_before_acceptance_frees_the_slot(smollm2: Path, eog_ban: dict[int, float]) -> None:
    async def main() -> None:
        client = await RunnerClient.start(_spec(smollm2, n_parallel=1, n_ctx=256))
        try:
            # Never ends by itself: no EOG, no limit, the context shifts.
            endless = GenerateRequest(prompt="Count:", options=SamplingOptions(temperature=0, logit_bias=eog_ban))
            task = asyncio.create_task(client.submit(endless))
            await asyncio.sleep(0)  # the submit frame is written, the answer not read yet
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # If the runner still ran it, this would wait forever for the only slot.
            _, final = await asyncio.wait_for(_collect(client, _request("Hi", 2)), 120)
            assert isinstance(final, Done)
        finally:
            await client.close()

    asyncio.run(main())
