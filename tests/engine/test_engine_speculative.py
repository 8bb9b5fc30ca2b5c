"""Speculative decoding in the engine: a draft model or prompt lookup drafts,
the target verifies every slot's draft in the step's one batch, and what is
emitted is what the target alone would emit (greedy: token for token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, InvalidRequestError, SamplingOptions
from pyllama.engine.speculative import VocabMismatch, lookup_draft, verify_draft

from engineutil import collect

STORY = "<|im_start|>user\nWrite a short story about a cat who learns to fly.<|im_end|>\n<|im_start|>assistant\n"
QUOTE = ("The quick brown fox jumps over the lazy dog while the small red hen bakes bread for the farm.")
REPEAT = f"{QUOTE}\n{QUOTE}\n{QUOTE}\n{QUOTE}\n"
N = 40
VOCAB_DIR = Path(__file__).resolve().parents[2] / "llama.cpp" / "models"


@pytest.fixture(scope="module")
def target(model_path: Path) -> _native.Model:
    return _native.Model(model_path)


@pytest.fixture(scope="module")
def spec3(target: _native.Model, draft_path: Path) -> Iterator[Engine]:
    """Three slots, the perturbed draft."""
    with Engine(target, n_ctx=3 * 512, n_parallel=3, n_batch=256, n_threads=1, draft=draft_path) as engine:
        yield engine


@pytest.fixture(scope="module")
def self_draft(target: _native.Model, model_path: Path) -> Iterator[Engine]:
    """SmolLM2 drafting for itself: every greedy draft is accepted."""
    with Engine(target, n_ctx=1024, n_parallel=2, n_batch=256, n_threads=1, draft=model_path) as engine:
        yield engine


def _request(prompt: str, n: int = N, **options: object) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=n, **options))


def _tokens(engine: Engine, request: GenerateRequest) -> tuple[list[int], int, int]:
    chunks, done = collect(engine.submit(request))
    tokens = [t for c in chunks for t in c.tokens]
    assert done.eval_count >= len(tokens)
    return tokens, done.draft_count, done.draft_accepted_count


def test_greedy_draft_model_is_exact_and_partly_accepted(spec3: Engine) -> None:
    plain, n_draft, _ = _tokens(spec3, _request(STORY, speculative="off"))
    assert n_draft == 0 and len(plain) == N
    drafted, n_draft, n_accepted = _tokens(spec3, _request(STORY, speculative="draft", draft_p_min=0.0))
    assert drafted == plain
    assert 0 < n_accepted < n_draft  # the perturbed draft is right sometimes, not always


def test_self_draft_is_always_accepted(self_draft: Engine) -> None:
    plain, _, _ = _tokens(self_draft, _request(STORY, speculative="off"))
    drafted, n_draft, n_accepted = _tokens(self_draft, _request(STORY, draft_p_min=0.0))  # "auto": the draft
    assert drafted == plain
    assert n_draft > N // 2 and n_accepted == n_draft


def test_draft_lengths_follow_the_options(self_draft: Engine) -> None:
    plain, _, _ = _tokens(self_draft, _request(STORY, speculative="off"))
    for n_max in (1, 3):
        decodes = self_draft._loop.n_decodes
        drafted, n_draft, n_accepted = _tokens(self_draft, _request(STORY, draft_p_min=0.0, draft_num_predict=n_max))
        decodes = self_draft._loop.n_decodes - decodes
        assert drafted == plain and n_draft == n_accepted
        # every step after the prompt's emits its next token and n_max accepted ones
        assert decodes == 1 + -(-(N - 1) // (n_max + 1))
        assert n_draft == N - decodes
    _, n_draft, _ = _tokens(self_draft, _request(STORY, draft_num_predict=0))
    assert n_draft == 0
    # draft_min: a draft shorter than it is dropped; p_min 1.0 stops every draft before its first token
    _, n_draft, _ = _tokens(self_draft, _request(STORY, draft_p_min=1.0))
    assert n_draft == 0
    _, n_draft, _ = _tokens(self_draft, _request(STORY, draft_p_min=0.0, draft_num_predict=4, draft_min=4))
    assert n_draft > 0 and n_draft % 4 == 0


def test_ngram_lookup_is_exact_and_accepts_repeats(spec3: Engine) -> None:
    plain, _, _ = _tokens(spec3, _request(REPEAT, n=60, speculative="off"))
    looked_up, n_draft, n_accepted = _tokens(spec3, _request(REPEAT, n=60, speculative="ngram", draft_num_predict=8))
    assert looked_up == plain
    assert n_accepted > 10 and n_draft >= n_accepted


def test_concurrent_streams_with_mixed_drafters_match_their_solo_runs(spec3: Engine) -> None:
    """Three slots in one batch per step: draft model, prompt lookup, none."""
    requests = [_request(STORY, speculative="draft", draft_p_min=0.0), _request(REPEAT, speculative="ngram"),
                _request("<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n",
                         speculative="draft", draft_p_min=0.0)]
    solo = [_tokens(spec3, GenerateRequest(prompt=r.prompt, options=SamplingOptions(
        temperature=0, num_predict=N, speculative="off")))[0] for r in requests]
    decodes = spec3._loop.n_decodes
    handles = [spec3.submit(r) for r in requests]
    results = [collect(h) for h in handles]
    for (chunks, done), want in zip(results, solo):
        assert [t for c in chunks for t in c.tokens] == want
    assert sum(d.draft_accepted_count for _, d in results) > 0
    # verified together: far fewer target decodes than tokens generated
    assert spec3._loop.n_decodes - decodes < sum(len(s) for s in solo)


def test_sampled_tokens_come_from_the_target(spec3: Engine) -> None:
    """With sampling, each emitted token (drafted or not) is the target's pick:
    with top_k 2 it is one of the target's two most likely tokens."""
    request = GenerateRequest(prompt=STORY, top_logprobs=2, options=SamplingOptions(
        temperature=1.0, top_k=2, seed=7, num_predict=N, speculative="draft", draft_p_min=0.0))
    chunks, done = collect(spec3.submit(request))
    lps = [lp for c in chunks for lp in c.logprobs]
    assert len(lps) == N and done.draft_count > 0
    for lp in lps:
        assert lp.token in {t.token for t in lp.top}


def test_verify_draft_stops_at_the_first_disagreement() -> None:
    class Scripted:
        def __init__(self, picks: list[int]) -> None:
            self.picks, self.rows = picks, []

        def sample(self, ctx: object, i: int) -> int:
            self.rows.append(i)
            return self.picks[len(self.rows) - 1]

    sampler = Scripted([5, 6, 9, 1])
    assert verify_draft(sampler, None, 10, [5, 6, 7]) == [5, 6, 9]  # type: ignore[arg-type]
    assert sampler.rows == [10, 11, 12]
    sampler = Scripted([5, 6, 7, 8])
    assert verify_draft(sampler, None, 0, [5, 6, 7]) == [5, 6, 7, 8]  # type: ignore[arg-type]
    assert verify_draft(Scripted([3]), None, 4, []) == [3]  # type: ignore[arg-type]


def test_lookup_draft_copies_what_followed_the_latest_match() -> None:
    assert lookup_draft([1, 2, 3, 4, 9, 1, 2, 3, 4, 7, 8, 1, 2, 3, 4], 3) == [7, 8, 1]
    assert lookup_draft([1, 2, 3, 4, 5, 1, 2, 3], 2) == [4, 5]
    assert lookup_draft([1, 2, 3, 4, 5, 6, 2, 3], 2) == []  # two tokens are no match
    assert lookup_draft([1, 2, 3], 4) == []
    assert lookup_draft([5, 5], 0) == []


def test_vocabulary_mismatch_is_a_load_error(target: _native.Model) -> None:
    other = _native.Model(VOCAB_DIR / "ggml-vocab-llama-bpe.gguf", vocab_only=True)  # another tokenizer
    with pytest.raises(VocabMismatch, match="does not share the vocabulary") as info:
        Engine(target, n_ctx=512, n_threads=1, draft=other)
    assert other.path in str(info.value) and isinstance(info.value, _native.ModelLoadError)


def test_draft_mode_without_a_draft_model_is_refused(target: _native.Model) -> None:
    with Engine(target, n_ctx=512, n_threads=1) as engine:
        with pytest.raises(InvalidRequestError, match="speculative \"draft\" needs"):
            engine.submit(_request(STORY, speculative="draft"))
        tokens, n_draft, _ = _tokens(engine, _request(REPEAT, n=8, speculative="ngram"))
        assert len(tokens) == 8
        for bad in ({"speculative": "medusa"}, {"draft_num_predict": -1}, {"draft_min": 65}, {"draft_p_min": 1.5}):
            with pytest.raises(InvalidRequestError):
                engine.submit(STORY, bad)
