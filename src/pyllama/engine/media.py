"""Images and audio in the engine: prompts of text and media chunks.

A request with media carries the raw bytes of each image or audio clip and a
prompt that names them with Ollama's ``[img-N]`` tags. On the submitting
thread the media are decoded (libmtmd) and the prompt is tokenized into
chunks; a job's prompt stays one int32 array, where a media chunk's cells
hold a negative placeholder naming that medium (one value per distinct
content hash, so two prompts share a cached prefix through an image only
when it is the same image). On the loop thread each media chunk is encoded
(GIL released) and its embedding rows decoded in their own batch - llama.cpp
evaluates token ids and embedding rows in separate decodes - while the
step's token batch carries every other slot's work.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pyllama import _native
from pyllama.engine.errors import InvalidRequestError

if TYPE_CHECKING:
    from pyllama.engine.jobs import GenerateJob
    from pyllama.engine.loop import EngineLoop
    from pyllama.engine.slots import Slot

IMAGE_TAG = re.compile(r"\[img-(\d+)\]")
ENCODE_CACHE = 4  # encoded media kept for reuse by another slot (one image is ~n_tokens x n_embd floats)


@dataclass(frozen=True)
class MediaSpan:
    """One media chunk of a prompt: cells ``start``..``end`` of the job's prompt."""

    start: int
    chunk: _native.Chunk

    @property
    def end(self) -> int:
        return self.start + self.chunk.n_tokens


class MediaKeys:
    """Placeholder values for media content hashes: -1, -2, ... in order of first sight.

    Distinct media never share a value, so a placeholder match in two prompts is a
    content-hash match. One value per medium seen by this engine (a few bytes each)."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._lock = threading.Lock()

    def key(self, chunk_id: str) -> int:
        with self._lock:
            return self._keys.setdefault(chunk_id, -1 - len(self._keys))


def _marked_prompt(text: str, n_media: int, marker: str) -> tuple[str, list[int]]:
    """``[img-N]`` tags -> the projector's marker; returns the text and the media order.

    Media no tag names come first, in order (raw prompts and direct engine use)."""
    order: list[int] = []

    def swap(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n >= n_media:
            raise InvalidRequestError(f"invalid image index: {n}")
        order.append(n)
        return marker

    body = IMAGE_TAG.sub(swap, text)
    untagged = [n for n in range(n_media) if n not in order]
    return marker * len(untagged) + body, untagged + order


def media_prompt(projector: _native.Projector, keys: MediaKeys, text: str, media: Sequence[bytes],
                 add_special: bool) -> tuple[npt.NDArray[np.int32], list[MediaSpan]]:
    """Blocking (decodes images): the job's prompt array and its media spans.

    Bad media (empty, truncated, an unknown format, audio for a vision-only
    projector) raise InvalidRequestError with libmtmd's reason."""
    if projector.marker in text:
        raise InvalidRequestError(f"the prompt must not contain the media marker {projector.marker!r}")
    marked, order = _marked_prompt(text, len(media), projector.marker)
    bitmaps = []
    for n in order:
        try:
            bitmaps.append(projector.bitmap_from_bytes(media[n]))
        except _native.MediaError as exc:
            raise InvalidRequestError(f"invalid image input (image {n}): {exc}") from None
    try:
        chunks = projector.tokenize(marked, bitmaps, add_special=add_special, parse_special=True)
    except (_native.MediaError, _native.LlamaError) as exc:
        raise InvalidRequestError(f"invalid image input: {exc}") from None
    pieces: list[npt.NDArray[np.int32]] = []
    spans: list[MediaSpan] = []
    n = 0
    for chunk in chunks:
        if chunk.is_media:
            if chunk.n_pos != chunk.n_tokens:
                raise InvalidRequestError("this model's projector uses M-RoPE positions, "
                                          "which the engine does not support yet")
            spans.append(MediaSpan(n, chunk))
            pieces.append(np.full(chunk.n_tokens, keys.key(chunk.id or ""), dtype=np.int32))
        else:
            pieces.append(np.asarray(chunk.tokens, dtype=np.int32))
        n += int(pieces[-1].size)
    prompt = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    return prompt, spans


def text_tokens(prompt: npt.NDArray[np.int32]) -> list[int]:
    """The prompt without media placeholders (what a sampler's history and ``context`` hold)."""
    return [int(t) for t in prompt if t >= 0]


def reuse_floor(spans: Sequence[MediaSpan], n_common: int) -> int:
    """A cached prefix may not end inside a medium: back off to its start."""
    for span in spans:
        if span.start < n_common < span.end:
            return span.start
    return n_common


def text_run(spans: Sequence[MediaSpan], start: int, take: int) -> int:
    """How many of ``take`` prompt cells from ``start`` are text before the next medium."""
    for span in spans:
        if span.start <= start < span.end:
            return 0
        if start < span.start:
            return min(take, span.start - start)
    return take


class MediaStep:
    """The loop's media work: encode a slot's next medium and decode its rows."""

    def __init__(self, projector: _native.Projector, n_batch: int) -> None:
        self.projector = projector
        self.batch = _native.Batch(n_batch, n_seq_max=1)
        self.n_batch = n_batch
        self._encoded: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self.n_encodes = 0

    def encode(self, chunk: _native.Chunk) -> npt.NDArray[np.float32]:
        """Embedding rows of a medium (a small cache by content hash: the same image in another slot)."""
        key = chunk.id or ""
        rows = self._encoded.get(key)
        if rows is not None:
            self._encoded.move_to_end(key)
            return rows
        rows = self.projector.encode(chunk).copy()  # the view dies at the next encode
        self.n_encodes += 1
        if key:
            self._encoded[key] = rows
            while len(self._encoded) > ENCODE_CACHE:
                self._encoded.popitem(last=False)
        return rows

    def run(self, loop: EngineLoop) -> None:
        """For each prefilling slot whose next prompt cell starts a medium: decode the medium's rows
        (in pieces of n_batch; a non-causal medium in one piece), then let the loop settle the slot."""
        for slot in loop.slots:
            job = slot.job
            if job is None or not job.prefilling or not job.media:
                continue
            span = next((s for s in job.media if s.start == len(slot.cache)), None)
            if span is None:
                continue
            try:
                rows = self.encode(span.chunk)
            except (_native.EncodeError, _native.LlamaError) as exc:
                loop._fail_slot(slot, f"failed to encode the image: {exc}", "decode")
                continue
            loop.use_lora(job.lora)  # the medium's KV is computed under the request's adapter scales
            if not self._decode(loop, slot, job, span, rows):
                continue
            loop._settle([slot])

    def _decode(self, loop: EngineLoop, slot: Slot, job: GenerateJob, span: MediaSpan,
                rows: npt.NDArray[np.float32]) -> bool:
        non_causal = self.projector.non_causal(span.chunk)
        step = rows.shape[0] if non_causal else self.n_batch
        if step > self.n_batch:
            loop._fail_slot(slot, f"the image needs {step} tokens in one batch, more than num_batch "
                                  f"({self.n_batch})", "context")
            return False
        last_in_prompt = span.end == len(job.prompt)
        for i in range(0, rows.shape[0], step):
            piece = rows[i:i + step]
            pos = span.start + i
            final = last_in_prompt and i + step >= rows.shape[0]
            self.batch.clear()
            first = self.batch.add_embeddings(piece, pos, slot.seq, logits_last=final)
            try:
                loop.ctx.decode(self.batch, non_causal=non_causal)
            except _native.KVCacheFullError as exc:
                loop._fail_slot(slot, f"the context is full: no room in the KV cache for the image ({exc})",
                                "context")
                return False
            except _native.DecodeError as exc:
                loop._fail_slot(slot, f"decode failed: {exc}", "decode")
                return False
            loop.n_decodes += 1
            if i + step < rows.shape[0]:
                slot.cache.extend(job.prompt[pos:pos + piece.shape[0]].tolist())
            else:
                job.pending = job.prompt[pos:pos + piece.shape[0]].tolist()
                job.pending_prompt = True
                job.i_batch = first + piece.shape[0] - 1 if final else -1
        return True
