"""What /api/generate and /api/chat share: checks, prompts, engine requests, parsed output.

The routes stay thin: they decode the body, call the checks here (each
raises ``RequestError`` with Ollama's wording and status), build the engine
request and relay the parsed events. Everything that may block (GGUF
header reads, the vocabulary load, template rendering) runs in a worker
thread via ``anyio.to_thread``; output parsing runs in the handler's task,
never on the engine's loop thread. The OpenAI layer can reuse these pieces
unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from pyllama.engine import InvalidRequestError, options_from_mapping
from pyllama.engine.types import Chunk, Done, Event, Failure, GrammarTrigger, SamplingOptions, TokenLogprob
from pyllama.keep_alive import KeepAliveError, parse_keep_alive
from pyllama.scheduler import DEFAULT_NUM_CTX, ModelRef, SchedulerError
from pyllama.server.errors import RequestError
from pyllama.server.schemas_inference import Logprob, ResponseToolCall, ResponseToolCallFunction, Tool, TopLogprob
from pyllama.store.capabilities import COMPLETION, INSERT, THINKING, TOOLS, VISION
from pyllama.store.gguf_meta import GGUFInfo
from pyllama.store.model import LocalModel
from pyllama.store.options import OptionTypeError, validate_options
from pyllama.templates import (
    OutputParser,
    RenderedPrompt,
    TemplateError,
    build_prompt,
    load_chat_templates,
)
from pyllama.templates.prompt import THINK_LEVELS

if TYPE_CHECKING:
    from pyllama._native import ChatTemplates, Model

ROLES = ("system", "user", "assistant", "tool")
MAX_TOP_LOGPROBS = 20
NO_VISION = "this model is missing data required for image input"

# ``format: "json"``: any JSON object. White space runs are bounded so a
# small model cannot stall in an endless run of blanks.
JSON_OBJECT_GRAMMAR = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}" ws
array  ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"" ws
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,4} )? ws
ws     ::= [ \t\n]{0,16}
"""


# -- small checks -------------------------------------------------------------


def check_top_logprobs(top_logprobs: int) -> None:
    if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise RequestError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")


def parse_think(value: Any) -> bool | str | None:
    """The request's ``think``: None, a bool or a level, with Ollama's 400 wording."""
    levels = ", ".join(f'"{level}"' for level in reversed(THINK_LEVELS[:3])) + f', "{THINK_LEVELS[3]}"'
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value not in THINK_LEVELS:
            raise RequestError(f"invalid think value: {json.dumps(value)} (must be {levels}, true, or false)")
        return value
    raise RequestError(f"think must be a boolean or string ({levels}, true, or false)")


def think_requested(think: bool | str | None) -> bool:
    return think is True or isinstance(think, str)


def parse_keep_alive_field(value: Any) -> float | None:
    """``keep_alive`` in seconds (inf = forever), None when absent; 400 as Ollama."""
    if value is None:
        return None
    try:
        return parse_keep_alive(value)
    except KeepAliveError as exc:
        raise RequestError(str(exc)) from None


def check_images(images: Sequence[str] | None) -> list[bytes]:
    """Decode base64 images (std alphabet, padded); bad data is a 400 as Go's decoder words it."""
    out: list[bytes] = []
    for image in images or []:
        try:
            out.append(base64.b64decode(image, validate=True))
        except (binascii.Error, ValueError):
            at = next((i for i, c in enumerate(image) if c not in _B64_CHARS), len(image))
            raise RequestError(f"illegal base64 data at input byte {at}") from None
    return out


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def format_grammar(value: Any) -> str:
    """``format`` -> GBNF: "json" is any object, an object is a JSON Schema; null/"" unset."""
    if value is None or value == "":
        return ""
    if value == "json":
        return JSON_OBJECT_GRAMMAR
    if not isinstance(value, dict):
        quoted = json.dumps(msgspec.json.encode(value).decode())
        raise RequestError(f'invalid format: {quoted}; expected "json" or a valid JSON Schema object')
    from pyllama import _native

    try:
        return _native.json_schema_to_grammar(value)
    except (ValueError, RuntimeError, TypeError):
        raise RequestError("invalid JSON schema in format") from None


def check_tools(tools: Sequence[Mapping[str, Any]] | None) -> None:
    """Tool definitions must have Ollama's shape (a wrong type is a 400 naming the field)."""
    for i, tool in enumerate(tools or []):
        try:
            msgspec.convert(tool, Tool)
        except msgspec.ValidationError as exc:
            message = str(exc).replace("`$", f"`$.tools[{i}]", 1)
            raise RequestError(message) from None


def merged_options(model_parameters: Mapping[str, Any], request: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults <- the model's PARAMETERs <- the request's ``options`` (types checked, 400)."""
    try:
        merged = validate_options(model_parameters)
        merged.update(validate_options(request))
    except OptionTypeError as exc:
        raise RequestError(exc.message) from None
    if merged.get("num_thread", 0) < 0:
        raise RequestError("num_thread must be >= 0 (0 = automatic)")
    return merged


def sampling_options(options: Mapping[str, Any], *, grammar: str = "", stops: Sequence[str] = (),
                     rendered: RenderedPrompt | None = None) -> SamplingOptions:
    """The engine's options for a request; value errors (e.g. negative temperature) are 400s.

    With ``rendered`` from a Jinja template and tools, llama.cpp's tool-call
    grammar (lazy, with its triggers) constrains the calls, as in
    llama-server; a user grammar (``format``) wins, as llama-server's
    response format replaces the tool grammar."""
    try:
        opts = options_from_mapping(options)
    except InvalidRequestError as exc:
        raise RequestError(str(exc)) from None
    extra = [s for s in stops if s and s not in opts.stop]
    if grammar or extra:
        opts = msgspec.structs.replace(opts, grammar=grammar or opts.grammar, stop=[*opts.stop, *extra])
    if not opts.grammar and rendered is not None and rendered.tools and rendered.grammar:
        opts = msgspec.structs.replace(opts, **tool_grammar(rendered))
    return opts


def tool_grammar(rendered: RenderedPrompt) -> dict[str, Any]:
    """The SamplingOptions fields for llama.cpp's tool-call grammar of a rendered prompt."""
    triggers = [GrammarTrigger(str(t.get("type") or ""), str(t.get("value") or ""), int(t.get("token", -1)))
                for t in rendered.grammar_triggers]
    return {"grammar": rendered.grammar, "grammar_lazy": rendered.grammar_lazy, "grammar_triggers": triggers,
            "preserved_tokens": rendered.preserved_tokens}


def schedule_error(exc: BaseException) -> RequestError:
    """Map a scheduler/engine failure raised before streaming to its HTTP status."""
    if isinstance(exc, SchedulerError):
        return RequestError(exc.message, exc.status_code)
    if isinstance(exc, InvalidRequestError):
        return RequestError(str(exc), 400)
    return RequestError(str(exc) or type(exc).__name__, 500)


# -- the model as the routes see it ---------------------------------------------


@dataclass
class ModelView:
    """A stored model plus what prompting it needs (built in a worker thread)."""

    local: LocalModel
    ref: ModelRef
    info: GGUFInfo | None
    capabilities: list[str]
    chat: ChatTemplates
    n_ctx_train: int = 0

    @property
    def vocab(self) -> Model:
        return self.chat.model

    @property
    def full_name(self) -> str:
        return self.local.name.display_full

    def count_tokens(self, text: str) -> int:
        return len(self.vocab.tokenize(text, add_special=True, parse_special=True))

    def fim_tokens(self) -> tuple[str, str, str] | None:
        ids = (self.vocab.token_fim_pre, self.vocab.token_fim_suf, self.vocab.token_fim_mid)
        if any(t is None or t < 0 for t in ids):
            return None
        return tuple(self.vocab.token_text(int(t)) for t in ids)  # type: ignore[return-value, arg-type]

    def template_source(self) -> str | ChatTemplates:
        """The TEMPLATE layer (Go) when the model has one, else the GGUF's Jinja template."""
        return self.local.template if self.local.template is not None else self.chat


def inspect_model(local: LocalModel) -> ModelView:
    """Blocking: GGUF header, vocabulary (cached per blob) and capabilities.

    Capabilities are ``LocalModel.capabilities``, the same list /api/show
    reports, so a client that checks there is never surprised here.
    """
    ref = ModelRef.from_local(local)
    info = local.gguf()
    chat = load_chat_templates(str(ref.path))
    train = info.arch_key("context_length") if info is not None else None
    return ModelView(local, ref, info, local.capabilities(info), chat, train if isinstance(train, int) else 0)


def check_capabilities(view: ModelView, requested_model: str, *, route: str, think: bool | str | None,
                       tools: bool = False, suffix: bool = False, images: bool = False) -> None:
    """Ollama's order and words: thinking, then completion, then tools/insert; images need vision."""
    caps = view.capabilities
    if THINKING not in caps and think_requested(think):
        raise RequestError(f"{json.dumps(requested_model)} does not support thinking")
    if COMPLETION not in caps:
        raise RequestError(f"{json.dumps(requested_model)} does not support {route}")
    missing = [cap for cap, wanted in ((TOOLS, tools), (INSERT, suffix)) if wanted and cap not in caps]
    if missing:
        raise RequestError(f"{view.full_name} does not support " + "\n".join(missing))
    if images:
        if VISION not in caps:
            raise RequestError(NO_VISION)
        raise RequestError("image input is not supported by this server yet (no multimodal projector support)", 501)


def num_ctx_for(view: ModelView, options: Mapping[str, Any], context_length: int) -> int:
    """The per-request context the scheduler will give: option, env default, 4096; capped at training."""
    num_ctx = int(options.get("num_ctx") or 0) or context_length or DEFAULT_NUM_CTX
    if view.n_ctx_train > 0:
        num_ctx = min(num_ctx, view.n_ctx_train)
    return max(num_ctx, 4)


def render(view: ModelView, source: str | ChatTemplates | None, messages: Sequence[Mapping[str, Any]], *,
           tools: Sequence[Mapping[str, Any]] | None = None, think: bool | str | None = None, suffix: str = "",
           raw: bool = False, context_text: str = "", num_ctx: int = 0, truncate: bool = True,
           generic_tools: bool = False) -> RenderedPrompt:
    """Blocking: render the prompt; a template that fails is a 400 with the template's message."""
    try:
        return build_prompt(source, messages, tools=tools, think=think, default_think=THINKING in view.capabilities,
                            suffix=suffix, raw=raw, context_text=context_text, fim_tokens=view.fim_tokens(),
                            num_ctx=num_ctx, count_tokens=view.count_tokens, truncate=truncate,
                            generic_tools=generic_tools)
    except TemplateError as exc:
        raise RequestError(str(exc)) from None
    except ValueError as exc:
        raise RequestError(str(exc)) from None


# -- output ------------------------------------------------------------------------


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
    )


def l2_normalize(vector: Sequence[float]) -> list[float]:
    """Ollama's normalisation (NaN/Inf is a 400)."""
    total = 0.0
    for v in vector:
        if not math.isfinite(v):
            raise RequestError("embedding contains NaN or Inf values")
        total += v * v
    scale = 1.0 / max(math.sqrt(total), 1e-12)
    return [v * scale for v in vector]
