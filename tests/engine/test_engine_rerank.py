"""Rerank requests: pairs built as llama.cpp builds them, scored many per decode."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyllama import _native
from pyllama.engine import Embeddings, Engine, InvalidRequestError, RerankRequest
from pyllama.engine.rerank import PairBuilder, fill_template
from rerankutil import DOCUMENTS, QUERY, binding_scores, default_pair

LONG = " ".join(f"bamboo{i}" for i in range(300))


@pytest.fixture(scope="module")
def reranker(reranker_path: Path) -> Iterator[Engine]:
    """Eight pairs per decode, 512-token batches (the model's training context)."""
    with Engine(reranker_path, n_ctx=512, n_parallel=8, n_batch=512, n_threads=1, embeddings=True) as engine:
        yield engine


def test_binding_exposes_the_rank_output(reranker_path: Path) -> None:
    model = _native.Model(str(reranker_path))
    assert model.n_cls_out == 1 and model.cls_labels == ["LABEL_0"]
    ctx = _native.Context(model, n_ctx=512, n_batch=512, n_ubatch=512, embeddings=True, n_threads=1)
    assert ctx.pooling == "rank"
    assert not ctx.has_memory  # BERT keeps no KV cache
    batch = _native.Batch(512)
    tokens = default_pair(model, QUERY, DOCUMENTS[0])
    batch.add_arrays(tokens, range(len(tokens)), [0] * len(tokens), [True] * len(tokens))
    ctx.decode(batch)
    assert ctx.seq_embeddings(0).shape == (1,)


def test_scores_equal_the_binding_and_share_one_decode(reranker: Engine, reranker_path: Path) -> None:
    before = reranker._loop.n_decodes
    scores = reranker.rerank(QUERY, DOCUMENTS)
    assert reranker._loop.n_decodes == before + 1  # five pairs, one decode
    pairs = [default_pair(reranker.model, QUERY, d) for d in DOCUMENTS]
    assert scores == pytest.approx(binding_scores(reranker_path, pairs), abs=1e-6)
    assert len(set(scores)) == len(scores)  # random weights still tell the documents apart


def test_default_pair_layout(reranker: Engine) -> None:
    builder = PairBuilder(reranker.model, 512)
    assert builder.template is None
    (pair,) = builder.pairs("a query", ["a document"], truncate=True)
    assert pair.tolist() == default_pair(reranker.model, "a query", "a document")


def test_requests_share_decodes_with_each_other(reranker: Engine, reranker_path: Path) -> None:
    """Pairs of requests that wait together go into the same decode."""
    gate, entered = threading.Event(), threading.Event()
    sizes: list[int] = []
    decode = reranker._loop.decode

    def gated(batch: _native.Batch) -> None:
        entered.set()
        gate.wait(30)
        sizes.append(len({batch.seq_ids(i)[0] for i in range(len(batch))}))
        decode(batch)

    reranker._loop.decode = gated  # type: ignore[method-assign]
    try:
        first = reranker.submit(RerankRequest(QUERY, DOCUMENTS[:1]))
        assert entered.wait(30)
        rest = [reranker.submit(RerankRequest(QUERY, [d])) for d in DOCUMENTS[1:3]]
        other = reranker.submit(RerankRequest("another query", DOCUMENTS[3:5]))
        gate.set()
        results = [h.result().embeddings for h in (first, *rest)]
        assert len(other.result().embeddings) == 2
    finally:
        reranker._loop.decode = decode  # type: ignore[method-assign]
    assert sizes == [1, 4]  # the first alone; then two requests of one pair and one of two
    model = reranker.model
    second = [default_pair(model, QUERY, d) for d in DOCUMENTS[1:3]]
    second += [default_pair(model, "another query", d) for d in DOCUMENTS[3:5]]
    expected = binding_scores(reranker_path, [default_pair(model, QUERY, DOCUMENTS[0])])
    expected += binding_scores(reranker_path, second)[:2]
    assert [r[0][0] for r in results] == pytest.approx(expected, abs=1e-6)


def test_result_counts_pair_tokens(reranker: Engine) -> None:
    final = reranker.submit(RerankRequest(QUERY, DOCUMENTS[:2])).get(timeout=60)
    assert isinstance(final, Embeddings)
    assert final.prompt_eval_count == sum(len(default_pair(reranker.model, QUERY, d)) for d in DOCUMENTS[:2])
    assert reranker.rerank(QUERY, []) == []


def test_long_documents_are_cut_or_refused(reranker: Engine, reranker_path: Path) -> None:
    model = reranker.model
    full = default_pair(model, QUERY, LONG)
    assert len(full) > 512
    with pytest.raises(InvalidRequestError, match="document 1: the input length exceeds the context length"):
        reranker.rerank(QUERY, [DOCUMENTS[0], LONG], truncate=False)
    (score,) = reranker.rerank(QUERY, [LONG])
    assert score == pytest.approx(binding_scores(reranker_path, [full[:512]])[0], abs=1e-6)
    with pytest.raises(InvalidRequestError, match="the query leaves no room"):
        reranker.rerank(LONG + " " + LONG, ["short"])


def test_rerank_template(reranker_template_path: Path) -> None:
    model = _native.Model(str(reranker_template_path))
    builder = PairBuilder(model, 64)
    assert builder.template is not None
    (pair,) = builder.pairs("pandas {document}", ["bamboo"], truncate=True)
    filled = "[CLS] query: pandas {document} [SEP] document: bamboo [SEP]"
    assert fill_template(builder.template, "pandas {document}", "bamboo") == filled
    assert pair.tolist() == model.tokenize(filled, add_special=False, parse_special=True).tolist()
    assert pair[0] == model.token_bos and pair[-1] == model.token_sep  # [CLS]/[SEP] parsed as special tokens
    (cut,) = builder.pairs("pandas", [LONG], truncate=True)
    assert len(cut) <= 64 and cut[-1] == model.token_sep  # the document was cut, not the template's tail
    with pytest.raises(InvalidRequestError, match="document 0"):
        builder.pairs("pandas", [LONG], truncate=False)
    with Engine(model, n_ctx=512, n_parallel=8, n_batch=512, n_threads=1, embeddings=True) as engine:
        scores = engine.rerank("pandas", DOCUMENTS)
    pairs = [model.tokenize(fill_template(builder.template, "pandas", d), add_special=False,
                            parse_special=True).tolist() for d in DOCUMENTS]
    assert scores == pytest.approx(binding_scores(reranker_template_path, pairs), abs=1e-6)


def test_only_rank_pooling_engines_rerank(engine_model: _native.Model, reranker_path: Path) -> None:
    with Engine(engine_model, n_ctx=512, n_batch=256, n_threads=1, embeddings=True) as embedder:
        with pytest.raises(InvalidRequestError, match="pooling is 'mean'"):
            embedder.rerank(QUERY, DOCUMENTS)
    with Engine(reranker_path, n_ctx=512, n_batch=512, n_threads=1) as generator:
        with pytest.raises(InvalidRequestError, match="does not rerank"):
            generator.rerank(QUERY, DOCUMENTS)
