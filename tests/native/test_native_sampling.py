"""Samplers, grammars and JSON schemas driven through real decoding."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pyllama import _native


def generate(model, ctx, sampler, prompt_tokens, max_tokens=64, seq=0):
    batch = _native.Batch(ctx.n_batch)
    batch.add_sequence(prompt_tokens, 0, seq)
    ctx.decode(batch)
    idx, pos, out = len(batch) - 1, len(prompt_tokens), []
    for _ in range(max_tokens):
        tok = sampler.sample(ctx, idx)
        if model.is_eog(tok):
            break
        out.append(tok)
        batch.clear()
        idx = batch.add(tok, pos, seq, True)
        pos += 1
        ctx.decode(batch)
    return out


def chat_prompt(model, text):
    prompt = _native.ChatTemplates(model).apply([{"role": "user", "content": text}])["prompt"]
    return model.tokenize(prompt, add_special=False, parse_special=True)


def test_every_sampler_builds_and_runs(model):
    ctx = _native.Context(model, n_ctx=512, n_threads=1)
    sampler = (_native.Sampler()
               .add_logit_bias(model, {model.token_eos: -1.0})
               .add_penalties(64, 1.1, 0.1, 0.1)
               .add_dry(model, 0.8, 1.75, 2, 64)
               .add_top_n_sigma(2.0)
               .add_top_k(40)
               .add_typical(0.95)
               .add_top_p(0.95)
               .add_min_p(0.05)
               .add_xtc(0.1, 0.1, 1, seed=3)
               .add_temp_ext(0.8, 0.1, 1.0)
               .add_temp(0.7)
               .add_dist(seed=42))
    assert sampler.names[:3] == ["logit-bias", "penalties", "dry"]
    assert len(sampler) == 12
    out = generate(model, ctx, sampler, model.tokenize("Colors of the rainbow:"), 16)
    assert len(out) > 0
    for picker in (_native.Sampler().add_mirostat(model.n_vocab, seed=1),
                   _native.Sampler().add_temp(0.8).add_mirostat_v2(seed=1),
                   _native.Sampler().add_top_k(20).add_adaptive_p(0.5, seed=1),
                   _native.Sampler().add_top_k(20).add_infill(model).add_greedy()):
        ctx.clear()
        assert len(generate(model, ctx, picker, model.tokenize("Colors of the rainbow:"), 4)) >= 1


def test_seeded_dist_is_reproducible(model):
    ctx = _native.Context(model, n_ctx=512, n_threads=1)
    prompt = model.tokenize("My favourite animal is")
    runs = []
    for _ in range(2):
        ctx.clear()
        s = _native.Sampler().add_top_k(50).add_temp(1.0).add_dist(seed=1234)
        runs.append(generate(model, ctx, s, prompt, 24))
    assert runs[0] == runs[1]
    assert _native.Sampler().add_dist(seed=1234).seed == 1234


def test_logit_bias_bans_a_token(model):
    ctx = _native.Context(model, n_ctx=512, n_threads=1)
    prompt = model.tokenize("The capital of France is")
    free_run = generate(model, ctx, _native.Sampler().add_greedy(), prompt, 1)
    ctx.clear()
    banned = _native.Sampler().add_logit_bias(model, {free_run[0]: float("-inf")}).add_greedy()
    assert generate(model, ctx, banned, prompt, 1)[0] != free_run[0]


def test_sample_logits_and_reset(model):
    logits = np.full(model.n_vocab, -5.0, dtype=np.float32)
    logits[1234] = 10.0
    assert _native.Sampler().add_greedy().sample_logits(logits) == 1234
    s = _native.Sampler().add_penalties(8, 2.0).add_greedy()
    s.accept(1234)
    s.reset()
    assert s.sample_logits(logits) == 1234
    clone = s.clone()
    assert clone.names == s.names


def test_json_schema_grammar_forces_valid_output(model):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    grammar = _native.json_schema_to_grammar(schema)
    assert "root ::=" in grammar
    ctx = _native.Context(model, n_ctx=1024, n_threads=1)
    sampler = _native.Sampler().add_grammar(model, grammar).add_greedy()
    out = generate(model, ctx, sampler, chat_prompt(model, "Describe a person as JSON."), 96)
    value = json.loads(model.detokenize(out))
    assert set(value) == {"name", "age"}
    assert isinstance(value["name"], str) and isinstance(value["age"], int)


def test_lazy_grammar_activates_on_trigger(model):
    grammar = 'root ::= "<tool>" [a-z]+ "</tool>"'
    sampler = (_native.Sampler()
               .add_grammar_lazy(model, grammar, trigger_patterns=[r"[\s\S]*?(<tool>[\s\S]*)"])
               .add_greedy())
    ctx = _native.Context(model, n_ctx=512, n_threads=1)
    out = generate(model, ctx, sampler, model.tokenize("Hello, how are you"), 8)
    assert len(out) > 0  # inactive grammar: free text flows


def test_gbnf_grammar_restricts_choices(model):
    ctx = _native.Context(model, n_ctx=512, n_threads=1)
    sampler = _native.Sampler().add_grammar(model, 'root ::= ("yes" | "no") "."').add_greedy()
    out = generate(model, ctx, sampler, chat_prompt(model, "Is the sky blue?"), 8)
    assert model.detokenize(out) in ("yes.", "no.")
