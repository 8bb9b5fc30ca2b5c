"""Request fields decoded and checked, with each API's wording and status.

Every check raises ``RequestError`` (400 unless said otherwise) before
anything is scheduled; the translators call these on their native
requests, so all four API families refuse the same things the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from litestar import Request

from pyllama.engine import InvalidRequestError, options_from_mapping
from pyllama.engine.options import MAX_TOP_LOGPROBS
from pyllama.engine.types import GrammarTrigger, SamplingOptions
from pyllama.keep_alive import KeepAliveError, parse_keep_alive
from pyllama.options import OptionError, merge_options
from pyllama.scheduler import SchedulerError
from pyllama.server.errors import RequestError
from pyllama.server.schemas_inference import Tool
from pyllama.templates import RenderedPrompt
from pyllama.templates.prompt import THINK_LEVELS

T = TypeVar("T")
ROLES = ("system", "user", "assistant", "tool")
IMAGE_PREFIXES = tuple(f"data:image/{kind};base64," for kind in ("jpeg", "jpg", "png", "webp")) + ("data:;base64,",)
# reasoning_effort -> the native ``think`` value (None: not thinking).
REASONING_EFFORTS: dict[str, bool | str] = {
    "none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high", "max": "max",
    "xhigh": "max", "ultra": "max",
}

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
        return merge_options(model_parameters, request)
    except OptionError as exc:
        raise RequestError(exc.message) from None


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

async def decode_body(request: Request[Any, Any, Any], type_: type[T]) -> T:
    """Decode a JSON body the way Ollama answers mistakes (400 + message)."""
    body = await request.body()
    if not body.strip():
        raise RequestError("missing request body")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.DecodeError as exc:
        raise RequestError(str(exc)) from None


def decode_image_url(url: str) -> str:
    """A base64 data URL -> the base64 payload the native messages carry (400 otherwise, in Ollama's words)."""
    if url.startswith(("http://", "https://")):
        raise RequestError("image URLs are not currently supported, please use base64 encoded data instead")
    prefix = next((p for p in IMAGE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise RequestError("invalid image input")
    data = url[len(prefix):]
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("invalid image input") from None
    return data


def think_from_effort(effort: str | None) -> bool | str | None:
    """A reasoning effort -> the native ``think`` (None when not given); unknown values are a 400."""
    if not effort:
        return None
    if effort not in REASONING_EFFORTS:
        raise RequestError(f"invalid reasoning value: '{effort}' (must be \"minimal\", \"low\", \"medium\", "
                           f"\"high\", \"xhigh\", \"max\", or \"none\")")
    return REASONING_EFFORTS[effort]
