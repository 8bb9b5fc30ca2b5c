"""Sampler chains from options, and log-probabilities from raw logits.

The chain follows llama.cpp's common sampler (which Ollama's llama runner
uses): logit bias, grammar (lazy for a chat template's tool calls: inactive
until a trigger), penalties, then either greedy (temperature 0),
temperature + mirostat (mirostat 1/2), or top_k -> typical -> top_p ->
min_p -> temperature -> a seeded random pick. Stages that would do nothing
with the given values are left out, so a default request costs no more
than it has to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.types import GrammarTrigger, SamplingOptions, TokenLogprob, TopLogprob

MIROSTAT_M = 100  # candidates mirostat v1 uses to estimate s_hat, as llama.cpp


def _seed(opts: SamplingOptions) -> int | None:
    """Ollama's seed -1 means a fresh random seed per request."""
    return None if opts.seed < 0 else opts.seed


def penalty_window(opts: SamplingOptions, n_ctx_slot: int) -> int:
    """How many recent tokens the repetition penalties look at (0: none)."""
    if opts.repeat_last_n == 0:
        return 0
    if opts.repeat_penalty == 1.0 and opts.frequency_penalty == 0.0 and opts.presence_penalty == 0.0:
        return 0
    return n_ctx_slot if opts.repeat_last_n < 0 else opts.repeat_last_n


_REGEX_SPECIAL = re.compile(r"[.^$|()*+?\[\]{}\\]")


def regex_escape(text: str) -> str:
    """A literal as a regex, as llama.cpp's ``regex_escape``: only the
    metacharacters get a backslash (the pattern is read by std::regex, which
    need not accept Python's escapes of spaces and newlines)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _single_token(model: _native.Model, text: str) -> int | None:
    ids = model.tokenize(text, add_special=False, parse_special=True)
    return int(ids[0]) if len(ids) == 1 else None


def lazy_grammar_triggers(model: _native.Model, triggers: Sequence[GrammarTrigger],
                          preserved_tokens: Collection[str] = ()) -> tuple[list[str], list[int]]:
    """(trigger patterns, trigger tokens) for ``Sampler.add_grammar_lazy``,
    converted as llama-server does: a word that is one preserved token
    becomes a token trigger, other words are regex-escaped, a "pattern" is
    searched as is, a "pattern_full" is anchored to the whole output, a
    token trigger passes its id (or the id of its text, when it has none)."""
    preserved = {tok for text in preserved_tokens if (tok := _single_token(model, text)) is not None}
    patterns: list[str] = []
    tokens: list[int] = []
    for trigger in triggers:
        if trigger.kind == "token" and trigger.token >= 0:
            tokens.append(trigger.token)
        elif trigger.kind in ("word", "token"):
            tok = _single_token(model, trigger.value)
            if tok is not None and (trigger.kind == "token" or tok in preserved):
                tokens.append(tok)
            elif trigger.value:
                patterns.append(regex_escape(trigger.value))
        elif trigger.kind == "pattern":
            patterns.append(trigger.value)
        elif trigger.kind == "pattern_full":
            value = trigger.value
            patterns.append(("" if value.startswith("^") else "^") + value + ("" if value.endswith("$") else "$")
                            if value else "^$")
        else:
            raise ValueError(f"unknown grammar trigger kind {trigger.kind!r}")
    return patterns, tokens


def build_sampler(model: _native.Model, opts: SamplingOptions, n_ctx_slot: int) -> _native.Sampler:
    """A fresh chain for one request (samplers carry state: penalty
    history, grammar position, mirostat's mu, the RNG)."""
    chain = _native.Sampler()
    if opts.logit_bias:
        chain.add_logit_bias(model, opts.logit_bias)
    if opts.grammar and opts.grammar_lazy:
        patterns, tokens = lazy_grammar_triggers(model, opts.grammar_triggers, opts.preserved_tokens)
        chain.add_grammar_lazy(model, opts.grammar, patterns, tokens)
    elif opts.grammar:
        chain.add_grammar(model, opts.grammar)
    window = penalty_window(opts, n_ctx_slot)
    if window:
        chain.add_penalties(window, opts.repeat_penalty, opts.frequency_penalty, opts.presence_penalty)
    if opts.temperature <= 0.0:
        return chain.add_greedy()
    seed = _seed(opts)
    if opts.mirostat == 1:
        return chain.add_temp(opts.temperature).add_mirostat(
            model.n_vocab, seed=seed, tau=opts.mirostat_tau, eta=opts.mirostat_eta, m=MIROSTAT_M)
    if opts.mirostat == 2:
        return chain.add_temp(opts.temperature).add_mirostat_v2(
            seed=seed, tau=opts.mirostat_tau, eta=opts.mirostat_eta)
    if opts.top_k > 0:
        chain.add_top_k(opts.top_k)
    if opts.typical_p < 1.0:
        chain.add_typical(opts.typical_p)
    if opts.top_p < 1.0:
        chain.add_top_p(opts.top_p)
    if opts.min_p > 0.0:
        chain.add_min_p(opts.min_p)
    return chain.add_temp(opts.temperature).add_dist(seed=seed)


def prime_sampler(chain: _native.Sampler, opts: SamplingOptions, prompt: Sequence[int], n_ctx_slot: int) -> None:
    """Feed the prompt's tail to the penalty history, as llama-server does,
    so a continuation is not free to repeat the prompt. Skipped with a
    grammar: accepting prompt tokens would advance the grammar's state (or,
    for a lazy one, fire its trigger on the prompt's own tool examples)."""
    window = penalty_window(opts, n_ctx_slot)
    if not window or opts.grammar:
        return
    for tok in prompt[-window:]:
        chain.accept(int(tok))


def token_logprob(logits: npt.NDArray[np.float32], token: int, n_top: int,
                  piece: Callable[[int], bytes]) -> TokenLogprob:
    """log-softmax of the raw logits (before any sampler touched them) at
    ``token``, plus the ``n_top`` most likely tokens, best first."""
    peak = float(logits.max())
    lse = peak + float(np.log(np.exp(logits - peak).sum(dtype=np.float64)))
    top: list[TopLogprob] = []
    if n_top > 0:
        n_top = min(n_top, logits.shape[0])
        best = np.argpartition(logits, -n_top)[-n_top:]
        best = best[np.argsort(-logits[best], kind="stable")]
        top = [TopLogprob(int(t), piece(int(t)), float(logits[t]) - lse) for t in best]
    return TokenLogprob(token, piece(token), float(logits[token]) - lse, top)
