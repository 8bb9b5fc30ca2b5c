"""Turn a conversation into the prompt text the engine decodes.

One entry point, :func:`build_prompt`, for both template kinds a model can
have: an Ollama TEMPLATE layer (Go ``text/template``, rendered by our
engine) or the GGUF's own Jinja template (rendered by llama.cpp's common
chat code through :class:`pyllama._native.ChatTemplates`). The result also
carries what is needed to parse the model's answer (see
:meth:`RenderedPrompt.output_parser`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pyllama.llama_errors import collect_load_errors
from pyllama.templates.generic_tools import GenericAnswerParser, answer_grammar, generic_messages
from pyllama.templates.gotypes import to_messages, to_tools
from pyllama.templates.messages import Msg, tag_images, to_openai_messages
from pyllama.templates.ollama import DEFAULT_TEMPLATE, OllamaTemplate, parse_ollama_template
from pyllama.templates.parsers import GoOutputParser, JinjaOutputParser, OutputParser

if TYPE_CHECKING:
    from pyllama._native import ChatTemplates

Think = bool | str | None
THINK_LEVELS = ("low", "medium", "high", "max")
IMAGE_TOKENS = 768  # what Ollama counts per image when fitting a conversation into num_ctx


@dataclass
class RenderedPrompt:
    """A rendered prompt plus everything generation and output parsing need."""

    prompt: str
    kind: Literal["go", "jinja", "raw", "fim"]
    images: list[Any] = field(default_factory=list)
    think: bool = False
    """Thinking in effect (request value, or the model default when absent)."""
    think_level: str = ""
    truncated: int = 0
    """How many leading messages were dropped to fit ``num_ctx``."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    # Go path: tags inferred from the TEMPLATE
    thinking_tags: tuple[str, str] = ("", "")
    tool_tag: str = "{"
    # Jinja path: llama.cpp's chat params (grammar for tool calls, stops, parser state)
    chat_params: dict[str, Any] | None = None
    tool_format: Literal["", "generic"] = ""
    """``generic``: the tools were rendered in our generic format (see ``generic_tools``)."""
    answer_grammar: str = ""
    """With the generic format: the grammar the whole answer must follow."""

    @property
    def grammar(self) -> str:
        return str((self.chat_params or {}).get("grammar") or "")

    @property
    def grammar_lazy(self) -> bool:
        return bool((self.chat_params or {}).get("grammar_lazy"))

    @property
    def grammar_triggers(self) -> list[dict[str, Any]]:
        return list((self.chat_params or {}).get("grammar_triggers") or [])

    @property
    def preserved_tokens(self) -> list[str]:
        return list((self.chat_params or {}).get("preserved_tokens") or [])

    @property
    def additional_stops(self) -> list[str]:
        return list((self.chat_params or {}).get("additional_stops") or [])

    def output_parser(self) -> OutputParser:
        """A fresh streaming parser matching how this prompt was built."""
        if self.tool_format == "generic":  # the template's own parser, under one that reads our JSON answer
            return GenericAnswerParser(dataclasses.replace(self, tools=[], tool_format="").output_parser(), self.tools)
        if self.kind == "jinja" and self.chat_params is not None:
            return JinjaOutputParser(self.chat_params, tools=bool(self.tools))
        if self.kind == "go":
            return GoOutputParser(thinking_tags=self.thinking_tags, think=self.think, prompt=self.prompt,
                                  tools=self.tools, tool_tag=self.tool_tag)
        return GoOutputParser()


_load_locks: dict[str, threading.Lock] = {}
_load_locks_guard = threading.Lock()


def load_chat_templates(model_path: str) -> ChatTemplates:
    """The GGUF's Jinja chat templates for ``model_path``, cached per path.

    Loads only the vocabulary (about 0.1 s), so the HTTP process can render
    and parse without the weights; blobs never change, so the cache is safe.
    Concurrent first requests for one model load it once: the others wait
    for that load instead of each building its own copy of the vocabulary.
    """
    with _load_locks_guard:
        lock = _load_locks.setdefault(model_path, threading.Lock())
    with lock:
        return _load_chat_templates(model_path)


@functools.lru_cache(maxsize=8)
def _load_chat_templates(model_path: str) -> ChatTemplates:
    from pyllama import _native

    with collect_load_errors() as errors:
        try:
            model = _native.Model(model_path, vocab_only=True)
        except _native.ModelLoadError as exc:
            raise _native.ModelLoadError(f"unable to load model: {model_path}: {errors.reason or exc}") from None
    return _native.ChatTemplates(model)


def think_values(think: Think, default_think: bool = False) -> tuple[bool, str, bool]:
    """(Think, ThinkLevel, IsThinkSet) as Ollama passes them to templates.

    ``think`` is the request value: a bool, a level string or None. Absent
    on a thinking-capable model (``default_think``), Ollama sets it to true
    before rendering, so templates see it as set. ``true`` means the
    ``medium`` level, as Ollama's ``ThinkValue.String``.
    """
    if think is None:
        return (True, "medium", True) if default_think else (False, "", False)
    if isinstance(think, str):
        if think not in THINK_LEVELS:
            raise ValueError(f"invalid think value: {think!r} (expected true, false, {', '.join(THINK_LEVELS)})")
        return True, think, True
    return bool(think), "medium" if think else "", True


def _source_template(source: str | OllamaTemplate | None) -> OllamaTemplate:
    if isinstance(source, OllamaTemplate):
        return source
    return parse_ollama_template(source or DEFAULT_TEMPLATE)


def build_prompt(
    source: str | OllamaTemplate | ChatTemplates | None,
    messages: Sequence[Msg],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: Think = None,
    default_think: bool = False,
    suffix: str = "",
    raw: bool = False,
    context_text: str = "",
    fim_tokens: tuple[str, str, str] | None = None,
    num_ctx: int = 0,
    count_tokens: Callable[[str], int] | None = None,
    image_tokens: int = IMAGE_TOKENS,
    truncate: bool = True,
    generic_tools: bool = False,
) -> RenderedPrompt:
    """Render ``messages`` (Ollama shape) with ``source``.

    ``source`` is a Go TEMPLATE text (or parsed :class:`OllamaTemplate`; None
    means Ollama's default ``{{ .Prompt }}``) or a ``ChatTemplates`` for the
    GGUF's Jinja template. For /api/generate pass the messages from
    :func:`~pyllama.templates.messages.generate_messages`; ``raw`` uses the
    last user message verbatim; ``suffix`` renders fill-in-the-middle
    (``.Prompt``/``.Suffix`` for Go templates, ``fim_tokens`` =
    (prefix, suffix, middle) token texts for Jinja models); ``context_text``
    (detokenized legacy ``context``) is prepended. With ``num_ctx`` and
    ``count_tokens``, the oldest messages are dropped until the prompt fits,
    as Ollama does (the last message always stays; images count
    ``image_tokens`` each). ``generic_tools`` renders ``tools`` in our
    generic format (for templates that cannot render them): the result's
    ``answer_grammar`` must then constrain the answer.
    """
    think_on, level, think_set = think_values(think, default_think)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if raw:
        content = str(last_user.get("content") or "") if last_user else ""
        images = list(last_user.get("images") or []) if last_user else []
        return RenderedPrompt(context_text + content, "raw", images, think_on, level)
    tool_list = [dict(t) for t in tools or []]
    generic = generic_tools and bool(tool_list)
    grammar = answer_grammar(tool_list) if generic else ""

    if suffix and not (source is None or isinstance(source, (str, OllamaTemplate))):
        if fim_tokens is None:
            raise ValueError("this model has no fill-in-the-middle template or tokens")
        pre, suf, mid = fim_tokens
        prefix = str(last_user.get("content") or "") if last_user else ""
        return RenderedPrompt(context_text + pre + prefix + suf + suffix + mid, "fim", [], think_on, level)

    def render(msgs: Sequence[Msg]) -> RenderedPrompt:
        if generic:
            rendered = render_plain(generic_messages(msgs, tool_list), [])
            rendered.tools, rendered.tool_format, rendered.answer_grammar = tool_list, "generic", grammar
            return rendered
        return render_plain(msgs, tool_list)

    def render_plain(msgs: Sequence[Msg], tools: list[dict[str, Any]]) -> RenderedPrompt:
        if source is None or isinstance(source, (str, OllamaTemplate)):
            return _render_go(_source_template(source), msgs, tools, think_on, level, think_set, suffix)
        return _render_jinja(source, msgs, tools, think_on, level)

    keep = _fit(render, messages, num_ctx, count_tokens, image_tokens) if (
        truncate and num_ctx > 0 and count_tokens is not None) else (0, [])
    start, system = keep
    selected = list(system) + list(messages[start:])
    tagged, images = tag_images(selected)
    result = render(tagged)
    result.prompt = context_text + result.prompt
    result.images = images
    result.truncated = start - len(system)
    return result


def _fit(render: Callable[[Sequence[Msg]], RenderedPrompt], messages: Sequence[Msg], num_ctx: int,
         count_tokens: Callable[[str], int], image_tokens: int) -> tuple[int, list[Msg]]:
    """Ollama's truncation: the earliest start whose rendering fits, plus the system messages kept.

    Ollama walks back from the last message until a start no longer fits;
    since a later start never renders longer, a binary search finds the same
    start with O(log n) renders. The system messages kept are those before
    the first start that did not fit, as in Ollama's loop.
    """
    last = len(messages) - 1

    def system_before(i: int) -> list[Msg]:
        return [m for m in messages[:i] if m.get("role") == "system"]

    def fits(i: int) -> bool:
        tokens = count_tokens(render(system_before(i) + list(messages[i:])).prompt)
        tokens += image_tokens * sum(len(m.get("images") or []) for m in messages[i:])
        return tokens <= num_ctx

    if last <= 0 or fits(0):
        return 0, []
    lo, hi = 1, last  # fits(0) is false; the last message alone is always kept
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo, system_before(lo - 1)


def _render_go(tmpl: OllamaTemplate, messages: Sequence[Msg], tools: list[dict[str, Any]],
               think: bool, level: str, think_set: bool, suffix: str) -> RenderedPrompt:
    prompt = ""
    if suffix:
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        prompt = str(last_user.get("content") or "") if last_user else ""
    text = tmpl.execute(to_messages(messages), tools=to_tools(tools), prompt=prompt, suffix=suffix,
                        think=think, think_level=level, is_think_set=think_set)
    return RenderedPrompt(text, "go", [], think, level, tools=tools,
                          thinking_tags=tmpl.thinking_tags(), tool_tag=tmpl.tool_call_tag())


def _render_jinja(templates: ChatTemplates, messages: Sequence[Msg], tools: list[dict[str, Any]],
                  think: bool, level: str) -> RenderedPrompt:
    converted = to_openai_messages(messages)
    prefill = converted[-1] if converted and converted[-1]["role"] == "assistant" else None
    if level == "max" and "<|channel|>" in templates.source():
        level = "high"  # Harmony (gpt-oss) has no "max" effort; Ollama maps it to high
    kwargs: dict[str, Any] = {"reasoning_effort": level} if level else {}
    params = templates.apply(converted, tools=tools or None, add_generation_prompt=prefill is None,
                             enable_thinking=think, chat_template_kwargs=kwargs or None)
    prompt = str(params["prompt"])
    if prefill is not None and prefill["content"]:
        # continue the final assistant message: cut what the template adds after it
        at = prompt.rfind(prefill["content"])
        if at >= 0:
            prompt = prompt[: at + len(prefill["content"])]
            params["prompt"] = prompt
    return RenderedPrompt(prompt, "jinja", [], think, level, tools=tools, chat_params=params)
