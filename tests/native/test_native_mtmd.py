"""Images through libmtmd: the tiny random-weight projector from
tests/fixtures/make_tiny_models.py against SmolLM2. Random weights make the
embeddings meaningless but deterministic and image-dependent, which is what
these tests check: token counts, determinism, decoding paths and errors."""
from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mediautil import png_bytes, wav_bytes
from pyllama import _native

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "make_tiny_models.py"
JPEG = ROOT / "llama.cpp" / "tools" / "mtmd" / "test-1.jpeg"
MP3 = ROOT / "llama.cpp" / "tools" / "mtmd" / "test-2.mp3"
# The fixture's vision tower: 32x32 images in 8x8 patches.
IMAGE_TOKENS = (32 // 8) ** 2
PROMPT = "Describe this picture: <__media__>\nIt shows"


@pytest.fixture(scope="session")
def mmproj_path(tmp_path_factory, model_path) -> Path:
    out = tmp_path_factory.mktemp("mmproj") / "mmproj.gguf"
    subprocess.run([sys.executable, str(FIXTURE), "mmproj", str(out)], check=True, timeout=120,
                   env={"SMOLLM2_GGUF": str(model_path), "PATH": "/usr/bin:/bin"})
    return out


@pytest.fixture(scope="session")
def projector(model, mmproj_path):
    return _native.Projector(mmproj_path, model, n_threads=1)


def bmp_bytes(rgb: np.ndarray) -> bytes:
    """A 24-bit bottom-up BMP (rows padded to 4 bytes, BGR order)."""
    h, w, _ = rgb.shape
    stride = (w * 3 + 3) & ~3
    rows = b"".join(rgb[y, :, ::-1].tobytes().ljust(stride, b"\x00") for y in range(h - 1, -1, -1))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(rows), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return header + info + rows


# The classic 1x1 GIF89a: one red pixel.
GIF_1X1 = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\x00\x00\x00\x00\x00"
           b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def image(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def prefill(ctx, projector, model, chunks, seq: int = 0) -> int:
    """Decode every chunk into `seq` through Batch (text) and
    Batch.add_embeddings (media); returns the batch index of the last logits
    row and the next position."""
    batch = _native.Batch(ctx.n_batch)
    pos = 0
    last = -1
    for i, chunk in enumerate(chunks):
        batch.clear()
        is_last = i == len(chunks) - 1
        if chunk.is_media:
            embd = projector.encode(chunk)
            batch.add_embeddings(embd, chunk.positions(pos), seq, logits_last=is_last)
            ctx.decode(batch, non_causal=projector.non_causal(chunk))
        else:
            batch.add_sequence(chunk.tokens, pos, seq, logits_last=is_last)
            ctx.decode(batch)
        pos += chunk.n_pos
        last = len(batch) - 1
    return last, pos


def greedy_after(ctx, projector, model, chunks, n: int = 8) -> list[int]:
    idx, pos = prefill(ctx, projector, model, chunks)
    batch = _native.Batch(8)
    out = []
    for _ in range(n):
        tok = int(np.argmax(ctx.logits(idx)))
        out.append(tok)
        batch.clear()
        idx = batch.add(tok, pos, 0, True)
        pos += 1
        ctx.decode(batch)
    return out


# ---- loading ------------------------------------------------------------------


def test_projector_loads_with_its_capabilities(projector, model):
    assert projector.supports_vision
    assert not projector.supports_audio
    assert projector.audio_sample_rate is None
    assert not projector.uses_mrope
    assert not projector.non_causal()
    assert projector.n_embd == model.n_embd == 576
    assert projector.marker == _native.default_media_marker() == "<__media__>"
    assert "vision" in repr(projector)


def test_projector_load_errors(model, model_path, tmp_path, mmproj_path):
    with pytest.raises(FileNotFoundError):
        _native.Projector(tmp_path / "missing.gguf", model)
    with pytest.raises(_native.ProjectorLoadError):
        _native.Projector(model_path, model, n_threads=1)  # a text model is no projector
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(mmproj_path.read_bytes()[:4096])
    with pytest.raises(_native.ProjectorLoadError):
        _native.Projector(cut, model, n_threads=1)
    with pytest.raises(ValueError):
        _native.Projector(mmproj_path, model, media_marker="")


# ---- media and tokenizing -------------------------------------------------------


@pytest.mark.parametrize("kind", ["png", "bmp", "jpeg", "gif", "rgb"])
def test_bitmaps_decode(projector, kind):
    rgb = image(1, 20)
    if kind == "png":
        data, size = png_bytes(rgb), (20, 20)
    elif kind == "bmp":
        data, size = bmp_bytes(rgb), (20, 20)
    elif kind == "gif":
        data, size = GIF_1X1, (1, 1)
    elif kind == "jpeg":
        data, size = JPEG.read_bytes(), None
    else:
        bm = _native.Bitmap.from_rgb(20, 20, rgb.tobytes())
        assert (bm.nx, bm.ny, bm.n_bytes, bm.is_audio) == (20, 20, 1200, False)
        assert bm.id == hashlib.sha256(rgb.tobytes()).hexdigest()
        return
    bm = projector.bitmap_from_bytes(data)
    assert not bm.is_audio
    assert bm.id == hashlib.sha256(data).hexdigest()
    if size is not None:
        assert (bm.nx, bm.ny) == size
    else:
        assert bm.nx > 32 and bm.ny > 32
    if kind in ("png", "bmp"):
        # lossless formats decode to the exact pixels
        assert bm.n_bytes == rgb.nbytes


def test_png_pixels_round_trip(projector):
    rgb = image(2, 16)
    a = projector.tokenize(PROMPT, [projector.bitmap_from_bytes(png_bytes(rgb))])
    b = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(16, 16, rgb)])
    # same pixels through two paths -> the same embeddings
    ea = projector.encode(a[1]).copy()
    eb = projector.encode(b[1]).copy()
    np.testing.assert_array_equal(ea, eb)


def test_tokenize_splits_text_and_image(projector, model):
    data = png_bytes(image(3))
    chunks = projector.tokenize(PROMPT, [projector.bitmap_from_bytes(data)])
    assert [c.type for c in chunks] == ["text", "image", "text"]
    text0, img, text1 = chunks
    assert img.is_media and not text0.is_media
    # the image takes (image_size / patch_size)^2 tokens, one position each
    assert img.n_tokens == IMAGE_TOKENS
    assert img.n_pos == IMAGE_TOKENS
    assert img.id == hashlib.sha256(data).hexdigest()
    assert text0.id is None
    assert img.tokens.size == 0
    assert model.detokenize(text0.tokens).endswith("Describe this picture: ")
    assert model.detokenize(text1.tokens) == "\nIt shows"
    assert chunks.n_tokens == text0.n_tokens + IMAGE_TOKENS + text1.n_tokens
    assert chunks.n_pos == chunks.n_tokens
    pos = img.positions(7)
    assert pos.shape == (IMAGE_TOKENS, 4) and pos.dtype == np.int32
    np.testing.assert_array_equal(pos[:, 0], np.arange(7, 7 + IMAGE_TOKENS))
    assert chunks[-1].index == 2
    with pytest.raises(IndexError):
        chunks[3]


def test_image_token_count_does_not_depend_on_image_size(projector):
    # the llava preprocessor resizes every image to the tower's 32x32
    for size in (8, 32, 100):
        chunks = projector.tokenize("<__media__>", [_native.Bitmap.from_rgb(size, size, image(size, size))])
        assert [c.n_tokens for c in chunks if c.is_media] == [IMAGE_TOKENS]


def test_text_only_prompt_is_one_chunk(projector, model):
    chunks = projector.tokenize("no media here")
    assert len(chunks) == 1 and chunks[0].type == "text"
    np.testing.assert_array_equal(chunks[0].tokens, model.tokenize("no media here"))


# ---- encoding and decoding ------------------------------------------------------------


def test_encode_is_deterministic_and_image_dependent(projector):
    a1 = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(48, 48, image(10))])
    a2 = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(48, 48, image(10))])
    b = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(48, 48, image(11))])
    ea1 = projector.encode(a1[1]).copy()
    assert ea1.shape == (IMAGE_TOKENS, 576) and ea1.dtype == np.float32
    assert np.isfinite(ea1).all() and np.abs(ea1).max() > 0
    ea2 = projector.encode(a2[1]).copy()
    eb = projector.encode(b[1])
    assert eb.base is not None  # a view over libmtmd's buffer, not a copy
    np.testing.assert_array_equal(ea1, ea2)
    assert np.abs(ea1 - eb).max() > 1e-3


def test_batch_path_matches_mtmd_helper(projector, model):
    """Our Batch.add_embeddings path and libmtmd's own eval give the same logits."""
    chunks = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(48, 48, image(20))])
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    idx, pos = prefill(ctx, projector, model, chunks)
    ours = ctx.logits(idx).copy()
    assert ctx.seq_pos_max(0) == pos - 1 == chunks.n_pos - 1
    ctx.clear()
    new_pos = projector.eval_chunks(ctx, chunks, 0, 0)
    assert new_pos == pos
    theirs = ctx.logits(-1).copy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_same_image_same_output_different_image_different_output(projector, model):
    ctx = _native.Context(model, n_ctx=256, n_threads=1)
    outs = {}
    for name, seed in (("a", 30), ("a_again", 30), ("b", 31)):
        ctx.clear()
        chunks = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(48, 48, image(seed))])
        idx, _ = prefill(ctx, projector, model, chunks)
        outs[name] = ctx.logits(idx).copy()
    np.testing.assert_array_equal(outs["a"], outs["a_again"])
    assert np.abs(outs["a"] - outs["b"]).max() > 1e-2
    ctx.clear()
    black = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(32, 32, np.zeros(32 * 32 * 3, np.uint8))])
    g_black = greedy_after(ctx, projector, model, black)
    ctx.clear()
    g_black2 = greedy_after(ctx, projector, model, black)
    ctx.clear()
    white = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(32, 32, np.full(32 * 32 * 3, 255, np.uint8))])
    g_white = greedy_after(ctx, projector, model, white)
    assert g_black == g_black2
    assert g_black != g_white


def test_image_then_generate_in_a_second_sequence(projector, model):
    """Media rows go to any sequence; a second sequence decodes the same
    image alongside a text-only first one, and sampling works after it."""
    ctx = _native.Context(model, n_ctx=512, n_seq_max=2, n_threads=1)
    text = model.tokenize("The capital of France is")
    batch = _native.Batch(64, n_seq_max=2)
    batch.add_sequence(text, 0, 0)
    ctx.decode(batch)
    chunks = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(48, 48, image(40))])
    pos = 0
    for chunk in chunks:
        batch.clear()
        if chunk.is_media:
            batch.add_embeddings(projector.encode(chunk), pos, 1, logits_last=True)
        else:
            batch.add_sequence(chunk.tokens, pos, 1)
        ctx.decode(batch)
        pos += chunk.n_pos
    assert ctx.seq_pos_max(1) == chunks.n_pos - 1
    assert ctx.seq_pos_max(0) == len(text) - 1
    sampler = _native.Sampler().add_greedy()
    tok = sampler.sample(ctx, len(batch) - 1)
    assert 0 <= tok < model.n_vocab
    batch.clear()
    batch.add(tok, pos, 1, True)
    ctx.decode(batch)
    assert ctx.seq_pos_max(1) == chunks.n_pos


# ---- errors -----------------------------------------------------------------------------


def test_bad_media_raises_media_error(projector):
    jpeg = JPEG.read_bytes()
    png = png_bytes(image(5))
    bad = {
        "empty": b"",
        "truncated jpeg": jpeg[: len(jpeg) // 2],
        "truncated png": png[: len(png) // 2],
        "garbage": b"this is not an image at all, just text" * 4,
        "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 24,
        "wav to a vision-only projector": wav_bytes(),
        "mp3 to a vision-only projector": MP3.read_bytes(),
    }
    for what, data in bad.items():
        with pytest.raises(_native.MediaError) as info:
            projector.bitmap_from_bytes(data)
        assert str(info.value), what
    with pytest.raises(_native.MediaError, match="audio"):
        projector.bitmap_from_bytes(wav_bytes())
    with pytest.raises(_native.MediaError, match="WebP"):
        projector.bitmap_from_bytes(bad["webp"])
    assert issubclass(_native.MediaError, ValueError)


def test_bad_raw_media_raises(projector):
    with pytest.raises(_native.MediaError):
        _native.Bitmap.from_rgb(0, 10, b"")
    with pytest.raises(_native.MediaError):
        _native.Bitmap.from_rgb(4, 4, b"\x00" * 47)
    with pytest.raises(_native.MediaError):
        _native.Bitmap.from_audio(np.zeros(0, np.float32))
    audio = _native.Bitmap.from_audio(np.zeros(1600, np.float32))
    assert audio.is_audio
    with pytest.raises(_native.MediaError, match="audio"):
        projector.tokenize("<__media__>", [audio])
    with pytest.raises(TypeError):
        _native.Bitmap()


def test_tokenize_and_encode_errors(projector, model, mmproj_path):
    bm = _native.Bitmap.from_rgb(8, 8, image(6, 8))
    with pytest.raises(ValueError, match="marker"):
        projector.tokenize("no marker", [bm])
    with pytest.raises(ValueError, match="marker"):
        projector.tokenize("<__media__> <__media__>", [bm])
    with pytest.raises(TypeError):
        projector.tokenize("<__media__>", ["not a bitmap"])
    chunks = projector.tokenize(PROMPT, [bm])
    with pytest.raises(ValueError, match="text chunks"):
        projector.encode(chunks[0])
    other = _native.Projector(mmproj_path, model, n_threads=1, warmup=False)
    with pytest.raises(ValueError, match="another projector"):
        other.encode(chunks[1])


def test_batch_embedding_errors(projector, model):
    chunks = projector.tokenize(PROMPT, [_native.Bitmap.from_rgb(8, 8, image(7, 8))])
    embd = projector.encode(chunks[1]).copy()
    batch = _native.Batch(64)
    batch.add_sequence(chunks[0].tokens, 0, 0)
    with pytest.raises(ValueError, match="not both"):
        batch.add_embeddings(embd, 10, 0)
    batch.clear()
    batch.add_embeddings(embd, 0, 0)
    assert batch.has_embeddings and len(batch) == IMAGE_TOKENS
    assert (batch.tokens == -1).all()
    with pytest.raises(ValueError, match="not both"):
        batch.add(1, 20, 0)
    with pytest.raises(ValueError, match="width"):
        batch.add_embeddings(np.zeros((2, 100), np.float32), 20, 0)
    with pytest.raises(ValueError):
        batch.add_embeddings(embd, np.zeros((3, 4), np.int32), 0)
    with pytest.raises(OverflowError):
        _native.Batch(4).add_embeddings(embd, 0, 0)
    ctx = _native.Context(model, n_ctx=256, n_ubatch=8, n_threads=1)
    wrong = _native.Batch(8)
    wrong.add_embeddings(np.zeros((2, 100), np.float32), 0, 0)
    with pytest.raises(ValueError, match="input width"):
        ctx.decode(wrong)
    with pytest.raises(OverflowError, match="n_ubatch"):
        ctx.decode(batch, non_causal=True)
    assert ctx.seq_pos_max(0) == -1
