"""Images in the engine: a prompt of text and media chunks decodes as the
low-level binding decodes it, batches exactly with text-only requests,
reuses a cached image by content hash, and refuses bad media cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engineutil import collect, greedy
from lorautil import assert_same_greedy
from mediautil import IMAGE_TOKENS, picture, reference_greedy, wav_bytes
from pyllama import _native
from pyllama.engine import Engine, GenerateRequest, InvalidRequestError

PROMPT = "Describe this picture: [img-0]\nIt shows"
N = 12


@pytest.fixture(scope="module")
def projector(engine_model: _native.Model, mmproj_path: Path) -> _native.Projector:
    return _native.Projector(mmproj_path, engine_model, n_threads=1)


@pytest.fixture(scope="module")
def vision(engine_model: _native.Model, projector: _native.Projector) -> Iterator[Engine]:
    with Engine(engine_model, n_ctx=1024, n_parallel=2, n_batch=256, n_threads=1, projector=projector) as engine:
        yield engine


def ask(engine: Engine, prompt: str, images: list[bytes], n: int = N, **options: object):
    request = GenerateRequest(prompt=prompt, images=images)
    return collect(engine.submit(request, greedy(num_predict=n, **options)))


def tokens(chunks) -> list[int]:
    return [t for c in chunks for t in c.tokens]


def test_image_prompt_matches_the_binding(vision: Engine, engine_model, projector) -> None:
    image = picture(1)
    chunks, done = ask(vision, PROMPT, [image])
    want, rows, n_prompt = reference_greedy(engine_model, projector, PROMPT.replace("[img-0]", projector.marker),
                                            [image], N)
    assert done.prompt_eval_count + done.cached_tokens == n_prompt
    assert_same_greedy(tokens(chunks), want, rows)
    # context carries the text tokens only (media cells are not token ids)
    assert all(t >= 0 for t in done.context)
    assert len(done.context) == n_prompt - IMAGE_TOKENS + len(tokens(chunks))


def test_the_image_changes_the_output_and_the_same_image_repeats(vision: Engine) -> None:
    a1, _ = ask(vision, PROMPT, [picture(2)])
    b, _ = ask(vision, PROMPT, [picture(3)])
    a2, _ = ask(vision, PROMPT, [picture(2)])
    assert tokens(a1) == tokens(a2)
    assert tokens(a1) != tokens(b)


def test_a_follow_up_reuses_the_cached_image(vision: Engine) -> None:
    image = picture(4)
    first, done1 = ask(vision, PROMPT, [image])
    encodes = vision._loop.media.n_encodes
    follow = PROMPT + vision.detokenize(tokens(first)) + "\nAnd the colours?"
    _, done2 = ask(vision, follow, [image])
    assert done2.cached_tokens >= done1.prompt_eval_count + done1.cached_tokens - 1
    assert done2.prompt_eval_count < done1.prompt_eval_count
    assert vision._loop.media.n_encodes == encodes  # neither re-encoded nor re-evaluated


def test_another_image_is_not_taken_from_the_cache(vision: Engine) -> None:
    ask(vision, PROMPT, [picture(5)])
    _, done = ask(vision, PROMPT, [picture(6)])
    prefix = len(vision.tokenize("Describe this picture: "))
    assert done.cached_tokens <= prefix
    assert done.prompt_eval_count >= IMAGE_TOKENS


def test_images_batch_exactly_with_text_requests(vision: Engine) -> None:
    text = "The capital of France is"
    alone_img, _ = ask(vision, PROMPT, [picture(7)])
    alone_txt = collect(vision.submit(text, greedy(num_predict=N)))[0]
    # a fresh engine so nothing is cached: both prompts evaluate in the same steps
    with Engine(vision.model, n_ctx=1024, n_parallel=2, n_batch=256, n_threads=1,
                projector=vision.projector) as fresh:
        h1 = fresh.submit(GenerateRequest(prompt=PROMPT, images=[picture(7)]), greedy(num_predict=N))
        h2 = fresh.submit(text, greedy(num_predict=N))
        together_img, together_txt = collect(h1)[0], collect(h2)[0]
    assert tokens(together_img) == tokens(alone_img)
    assert tokens(together_txt) == tokens(alone_txt)


def test_image_requests_batch_exactly_with_each_other(vision: Engine) -> None:
    alone = [tokens(ask(vision, PROMPT, [picture(s)])[0]) for s in (23, 24)]
    with Engine(vision.model, n_ctx=1024, n_parallel=2, n_batch=256, n_threads=1,
                projector=vision.projector) as fresh:
        handles = [fresh.submit(GenerateRequest(prompt=PROMPT, images=[picture(s)]), greedy(num_predict=N))
                   for s in (23, 24)]
        together = [tokens(collect(h)[0]) for h in handles]
        assert fresh._loop.media.n_encodes == 2
    assert together == alone


def test_two_images_and_untagged_images(vision: Engine, projector: _native.Projector) -> None:
    images = [picture(8), picture(9)]
    _, done = ask(vision, "First [img-1] then [img-0] end", images, n=2)
    marked = f"First {projector.marker} then {projector.marker} end"
    want = projector.tokenize(marked, [projector.bitmap_from_bytes(i) for i in images[::-1]])
    assert done.prompt_eval_count + done.cached_tokens == want.n_tokens
    assert sum(c.n_tokens for c in want if c.is_media) == 2 * IMAGE_TOKENS
    # an image the prompt does not name goes first
    untagged, _ = ask(vision, "What is this?", [picture(8)], n=4)
    tagged, _ = ask(vision, "[img-0]What is this?", [picture(8)], n=4)
    assert tokens(untagged) == tokens(tagged)


@pytest.mark.parametrize(("images", "words"), [
    ([b""], "invalid image input"),
    ([picture(1)[:40]], "invalid image input"),
    ([b"GIF87a not really"], "invalid image input"),
    ([b"\x00" * 64], "invalid image input"),
])
def test_bad_media_is_refused(vision: Engine, images: list[bytes], words: str) -> None:
    with pytest.raises(InvalidRequestError, match=words):
        vision.submit(GenerateRequest(prompt="look: [img-0]", images=images))
    ask(vision, PROMPT, [picture(1)], n=1)  # still serving


def test_bad_tags_and_markers_are_refused(vision: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="invalid image index: 3"):
        vision.submit(GenerateRequest(prompt="look: [img-3]", images=[picture(1)]))
    with pytest.raises(InvalidRequestError, match="media marker"):
        vision.submit(GenerateRequest(prompt="look: <__media__>", images=[picture(1)]))


def test_a_text_only_engine_refuses_images(engine2: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="missing data required for image input"):
        engine2.submit(GenerateRequest(prompt="look: [img-0]", images=[picture(1)]))


def test_audio_to_a_vision_only_projector_is_refused(vision: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="does not accept audio"):
        vision.submit(GenerateRequest(prompt="listen: [img-0]", images=[wav_bytes()]))
