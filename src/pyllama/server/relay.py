"""Parsed output relayed to the client: engine events -> deltas -> frames or one object.

``parsed_events`` turns the scheduler's events into ``Delta``s (content,
thinking, tool calls, logprobs) and one ``Final``; ``respond`` writes them
in the caller's ``Framing`` (Ollama's NDJSON, or server-sent events) or, for
``stream: false``, as one object. Each API family only supplies the
callbacks that shape its chunks. Output parsing runs in the handler's task,
never on the engine's loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from pyllama.engine.types import Chunk, Done, Event, Failure, TokenLogprob
from pyllama.server.errors import RequestError
from pyllama.server.schemas_inference import ErrorLine, Logprob, ResponseToolCall, ResponseToolCallFunction, TopLogprob
from pyllama.templates import OutputParser

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def json_response(obj: Any, status_code: int = 200) -> Response[bytes]:
    return Response(content=_encoder.encode(obj), status_code=status_code, media_type="application/json")


_second_text: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """UTC with nanoseconds, trailing zeros trimmed, ``Z``: Go's RFC3339Nano.

    Every streamed chunk carries one, so the date part is formatted once per second."""
    global _second_text
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    cached_secs, text = _second_text
    if cached_secs != secs:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _second_text = (secs, text)
    fraction = f"{frac:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def _piece_text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def api_logprobs(items: Sequence[TokenLogprob]) -> list[Logprob]:
    """Engine logprobs -> Ollama's (``bytes`` omitted for empty tokens, ``top_logprobs`` when none)."""
    out = []
    for item in items:
        top = [TopLogprob(token=_piece_text(t.piece), logprob=t.logprob, bytes=list(t.piece) or None)
               for t in item.top]
        out.append(Logprob(token=_piece_text(item.piece), logprob=item.logprob, bytes=list(item.piece) or None,
                           top_logprobs=top or None))
    return out


def api_tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[ResponseToolCall]:
    out = []
    for call in calls:
        fn = call.get("function") or {}
        out.append(ResponseToolCall(id=str(call.get("id") or ""), function=ResponseToolCallFunction(
            index=int(fn.get("index") or 0), name=str(fn.get("name") or ""), arguments=dict(fn.get("arguments") or {}))))
    return out


@dataclass
class Delta:
    """Parsed output of one or more engine chunks."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ResponseToolCall] = field(default_factory=list)
    logprobs: list[Logprob] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls or self.logprobs)

    @classmethod
    def joined(cls, deltas: Sequence[Delta]) -> Delta:
        """A whole (non-streamed) answer as one delta."""
        return cls("".join(d.content for d in deltas), "".join(d.thinking for d in deltas),
                   [c for d in deltas for c in d.tool_calls], [lp for d in deltas for lp in d.logprobs])


@dataclass
class Final:
    """The end of a completion: Ollama's metrics, in nanoseconds."""

    done_reason: str
    context: list[int]
    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    stop_sequence: str = ""
    draft_count: int = 0  # speculative decoding (pyllama's)
    draft_accepted_count: int = 0


class GenerationFailed(Exception):
    """The engine ended the request with a Failure (sent as the last NDJSON line)."""

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.status_code = status_code


async def parsed_events(events: AsyncIterator[Event], parser: OutputParser, *, started_ns: int,
                        loaded_ns: int) -> AsyncGenerator[Delta | Final, None]:
    """Engine events -> parsed deltas, then one Final. A Failure raises GenerationFailed.

    Closing this iterator closes ``events``, which frees the slot at once
    (and cancels the request in the runner if it is still running).
    """
    try:
        async for event in events:
            if isinstance(event, Chunk):
                parsed = parser.feed(event.text) if event.text else None
                delta = Delta(logprobs=api_logprobs(event.logprobs))
                if parsed:
                    delta.content, delta.thinking = parsed.content, parsed.thinking
                    delta.tool_calls = api_tool_calls(parsed.tool_calls)
                if delta:
                    yield delta
            elif isinstance(event, Done):
                rest = parser.finish()
                if rest:
                    yield Delta(rest.content, rest.thinking, api_tool_calls(rest.tool_calls))
                final = final_from(event, started_ns, loaded_ns)
                await _close(events)  # release the slot (and apply keep_alive 0) before the last line goes out
                yield final
                return
            elif isinstance(event, Failure):
                raise GenerationFailed(event.message, 400 if event.kind == "context" else 500)
    finally:
        await _close(events)


async def _close(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def final_from(done: Done, started_ns: int, loaded_ns: int) -> Final:
    return Final(
        done_reason=done.done_reason,
        context=list(done.context),
        total_duration=max(time.perf_counter_ns() - started_ns, 1),
        load_duration=max(loaded_ns - started_ns, 1),
        prompt_eval_count=done.prompt_eval_count,
        prompt_eval_duration=done.prompt_eval_duration,
        eval_count=done.eval_count,
        eval_duration=done.eval_duration,
        stop_sequence=done.stop_sequence,
        draft_count=done.draft_count,
        draft_accepted_count=done.draft_accepted_count,
    )


async def unless_disconnected(request: Request[Any, Any, Any], call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call`` in this task unless the client goes away first: then it is cancelled (freeing
    its queue place or slot) and the answer is Ollama's ``499 request canceled``, which nobody reads."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await call()
    except asyncio.CancelledError:
        if not gone:
            raise
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: this task goes on normally
        if uncancel is not None:
            uncancel()
        raise RequestError("request canceled", 499) from None
    finally:
        watcher.cancel()


# -- streaming ------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """How a stream is written: Ollama's NDJSON lines, or the /v1 routes' server-sent events."""

    media_type: str
    frame: Callable[[Any], bytes]
    error: Callable[[str], Any]
    trailer: bytes = b""


NDJSON_FRAMING = Framing(NDJSON, lambda obj: _encoder.encode(obj) + b"\n", ErrorLine)


def _objects(out: Any) -> list[Any]:
    """A chunk/final callback may give one object, several (a list) or none."""
    if out is None:
        return []
    return out if isinstance(out, list) else [out]


async def respond(request: Request[Any, Any, Any], items: AsyncIterator[Delta | Final], *, stream: bool,
                  chunk: Callable[[Delta], Any], final: Callable[[Final], Any],
                  whole: Callable[[list[Delta], Final], Any], framing: Framing = NDJSON_FRAMING) -> Response[Any]:
    """Relay parsed events: a stream of frames while streaming, else one object.

    The first event is awaited here, so a failure before any output keeps
    its HTTP status (as Ollama's "error before the first byte").
    """
    aclose = getattr(items, "aclose")
    try:
        first = await unless_disconnected(request, items.__anext__)
    except GenerationFailed as exc:
        await aclose()
        raise RequestError(str(exc), exc.status_code) from None
    except StopAsyncIteration:
        raise RequestError("the model runner ended the request without a result", 500) from None
    except BaseException:
        await aclose()
        raise

    if not stream:

        async def collect() -> tuple[list[Delta], Final]:
            deltas: list[Delta] = []
            item = first
            while not isinstance(item, Final):
                deltas.append(item)
                item = await items.__anext__()
            return deltas, item

        try:
            deltas, end = await unless_disconnected(request, collect)
        except GenerationFailed as exc:
            raise RequestError(str(exc), exc.status_code) from None
        except StopAsyncIteration:
            raise RequestError("the model runner ended the request without a result", 500) from None
        finally:
            await aclose()
        return json_response(whole(deltas, end))

    frame = framing.frame

    async def frames() -> AsyncGenerator[bytes, None]:
        item: Delta | Final = first
        try:
            while True:
                if isinstance(item, Final):
                    for obj in _objects(final(item)):
                        yield frame(obj)
                    if framing.trailer:
                        yield framing.trailer
                    return
                for obj in _objects(chunk(item)):
                    yield frame(obj)
                item = await items.__anext__()
        except GenerationFailed as exc:
            yield frame(framing.error(str(exc)))
        except StopAsyncIteration:
            yield frame(framing.error("the model runner ended the request without a result"))
        except Exception as exc:  # noqa: BLE001 - a mid-stream failure becomes the last frame
            log.exception("stream failed")
            yield frame(framing.error(str(exc) or type(exc).__name__))
        finally:
            await aclose()

    body = frames()
    # Closing the iterator after the response (also after a disconnect) cancels the engine request.
    return Stream(body, media_type=framing.media_type, status_code=200, background=BackgroundTask(body.aclose))
