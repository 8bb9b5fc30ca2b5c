"""The host-memory prompt cache: a conversation whose slot was taken by
another is restored from host memory when it returns, within the budget."""

from __future__ import annotations

from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, SamplingOptions

from engineutil import collect

NEAR_TIE = 1e-3
TOPICS = ["bread", "rivers", "chess", "volcanoes", "violins", "comets"]


def _prompt(topic: str, words: int) -> str:
    return f"Tell me about {topic}. " + " ".join(f"{topic} fact {i}." for i in range(words))


def _request(prompt: str) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=8), top_logprobs=2)


def _engine(model: _native.Model, mib: float) -> Engine:
    return Engine(model, n_ctx=1024, n_parallel=1, n_batch=256, n_threads=1, share_prefixes=False,
                  prompt_cache_mib=mib)


def test_a_returning_conversation_is_restored_from_host_memory(engine_model: _native.Model,
                                                               eog_ban: dict[int, float]) -> None:
    first = _prompt("bread", 40)
    runs = {}
    for mib in (0, 64):
        with _engine(engine_model, mib) as engine:
            chunks, done = collect(engine.submit(_request(first)))
            collect(engine.submit(_request(_prompt("rivers", 40))))  # takes the only slot
            follow_up = first + "".join(c.text for c in chunks) + " And what about rye?"
            runs[mib] = collect(engine.submit(_request(follow_up)))
            n_first = len(engine.tokenize(first))
            cache = engine._loop.prompt_cache
            assert (cache.n_saved, cache.n_restored) == ((0, 0) if mib == 0 else (2, 1))
            assert len(cache) == (0 if mib == 0 else 1)  # "rivers"; the restored "bread" lives in the slot now
    assert runs[0][1].cached_tokens < 5  # "Tell me about" at most
    restored = runs[64][1]
    assert restored.cached_tokens >= n_first  # only the reply and the new turn were evaluated
    assert restored.prompt_eval_count + restored.cached_tokens == runs[0][1].prompt_eval_count + 3
    lps = [lp for c in runs[0][0] for lp in c.logprobs]
    toks = [t for c in runs[64][0] for t in c.tokens]
    assert len(lps) == len(toks)
    for lp, tok in zip(lps, toks):
        if lp.token != tok:
            assert lp.top[0].logprob - lp.top[1].logprob < NEAR_TIE, (lp, tok)
            break


def test_the_cache_holds_no_more_than_its_budget(engine_model: _native.Model, eog_ban: dict[int, float]) -> None:
    """6 MiB holds two ~95-token states of SmolLM2 (23 KB a token), not five:
    the least recently used go first."""
    budget = 6 * 2**20
    with _engine(engine_model, 6) as engine:
        cache = engine._loop.prompt_cache
        for topic in TOPICS:
            collect(engine.submit(_request(_prompt(topic, 12))))
            assert 0 < cache.bytes <= budget or topic == TOPICS[0]
        assert cache.n_saved == len(TOPICS) - 1 and 0 < len(cache) < cache.n_saved
        # The last one saved ("violins") comes back; the first ("bread") was evicted.
        violins = collect(engine.submit(_request(_prompt("violins", 12) + " More?")))[1]
        assert violins.cached_tokens >= len(engine.tokenize(_prompt("violins", 12))) - 2
        assert collect(engine.submit(_request(_prompt("bread", 12) + " More?")))[1].cached_tokens < 5
        assert cache.bytes <= budget and cache.n_restored == 1
