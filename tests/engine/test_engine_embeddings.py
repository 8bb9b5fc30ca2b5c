"""Embedding requests: pooled vectors per input, normalisation, truncation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from pyllama import _native
from pyllama.engine import EmbedRequest, Embeddings, Engine, InvalidRequestError
from pyllama.engine.embedding import TOO_LONG


@pytest.fixture(scope="module")
def embedder(engine_model: _native.Model) -> Iterator[Engine]:
    """Two sequences per batch, inputs of up to 256 tokens (n_batch)."""
    with Engine(engine_model, n_ctx=512, n_parallel=2, n_batch=256, n_threads=1, embeddings=True) as engine:
        yield engine


TEXTS = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten rests on a rug.",
         "Interest rates were raised again."]


def test_normalised_and_raw_vectors(embedder: Engine) -> None:
    raw = np.array(embedder.embed(TEXTS[:1], normalize=False)[0])
    unit = np.array(embedder.embed(TEXTS[:1])[0])
    assert raw.shape == (embedder.model.n_embd,)
    assert abs(np.linalg.norm(unit) - 1.0) < 1e-6
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3
    assert np.allclose(unit, raw / np.linalg.norm(raw), atol=1e-6)


def test_many_inputs_keep_their_order(embedder: Engine) -> None:
    # Four inputs, two sequences per batch: two decodes, results in input order.
    together = np.array(embedder.embed(TEXTS))
    alone = np.array([embedder.embed([t])[0] for t in TEXTS])
    assert np.allclose(together, alone, atol=1e-4)
    sims = together @ together.T
    assert sims[0, 2] > sims[0, 1]  # cat ~ kitten more than cat ~ stocks


def test_final_record_counts_tokens(embedder: Engine) -> None:
    final = embedder.submit(EmbedRequest(TEXTS[:2])).get(timeout=60)
    assert isinstance(final, Embeddings)
    assert final.prompt_eval_count == sum(len(embedder.model.tokenize(t)) for t in TEXTS[:2])
    assert final.total_duration >= final.prompt_eval_duration > 0
    assert embedder.embed([]) == []


def test_truncation_rules(embedder: Engine) -> None:
    long_text = " ".join(f"word{i}" for i in range(400))
    assert len(embedder.model.tokenize(long_text)) > 256
    with pytest.raises(InvalidRequestError, match=TOO_LONG):
        embedder.embed([long_text], truncate=False)
    cut = embedder.embed([long_text])[0]
    assert len(cut) == embedder.model.n_embd
    prefix = embedder.model.tokenize(long_text)[:256]
    assert np.allclose(cut, embedder.embed([prefix])[0], atol=1e-4)


def test_embeddings_engine_does_not_generate(embedder: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="embeddings"):
        embedder.submit("hello")
    with pytest.raises(InvalidRequestError, match="empty"):
        embedder.embed([[]])
