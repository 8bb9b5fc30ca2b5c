# Projector: a multimodal projector (mmproj GGUF: vision and/or audio encoder
# plus the projection into the text model's embedding space) loaded with
# libmtmd against a Model. It decodes media, tokenizes prompts with media
# markers into chunks, and encodes media chunks into embedding rows that a
# Batch feeds to Context.decode. Tokenizing is thread-safe; encode is not
# (one owner thread, like a Context).

_AUDIO_MAGIC = (b"RIFF", b"ID3", b"fLaC")


cdef str _media_kind(const unsigned char[::1] data):
    """What the bytes look like, from magic numbers: "audio", "webp",
    "jpeg", "png", "gif", "bmp" or "unknown" (mtmd-helper's own tests plus
    the image formats stb_image reads)."""
    cdef Py_ssize_t n = data.shape[0]
    head = bytes(data[:12])
    if n >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if n >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if n >= 12 and (head[:3] == b"ID3" or head[:4] == b"fLaC" or (data[0] == 0xFF and (data[1] & 0xE0) == 0xE0)):
        return "audio"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    return "unknown"


cdef class Projector:
    """An mmproj GGUF loaded for `model` with libmtmd."""
    cdef mtmd_context * ptr
    cdef readonly Model model
    cdef readonly str path
    cdef bint _busy
    cdef int32_t _n_embd

    def __cinit__(self, path, Model model not None, *, n_threads=None, bint use_gpu=True, flash_attn=None,
                  bint warmup=True, int image_min_tokens=-1, int image_max_tokens=-1, str media_marker=None):
        self.ptr = NULL
        self._busy = False
        path = _os.fspath(path)
        if not _os.path.isfile(path):
            raise FileNotFoundError(f"projector file not found: {path}")
        if model.vocab_only:
            raise ValueError("a projector needs a model with weights, not vocab_only")
        if flash_attn not in _FLASH:
            raise ValueError("flash_attn must be None/'auto', True/'on' or False/'off'")
        nt = int(n_threads) if n_threads is not None else (_os.cpu_count() or 1)
        if nt < 1:
            raise ValueError("n_threads must be positive")
        if media_marker is not None and not media_marker:
            raise ValueError("media_marker must not be empty")
        self.path = path
        self.model = model
        cdef mtmd_context_params p = mtmd_context_params_default()
        p.use_gpu = use_gpu
        p.print_timings = False
        p.n_threads = nt
        p.flash_attn_type = _FLASH[flash_attn]
        p.warmup = warmup
        p.image_min_tokens = image_min_tokens
        p.image_max_tokens = image_max_tokens
        cdef bytes bmarker = media_marker.encode() if media_marker is not None else b""
        if media_marker is not None:
            p.media_marker = bmarker
        cdef bytes bpath = path.encode()
        cdef const char * cpath = bpath
        pyllama_clear_error()
        with nogil:
            self.ptr = mtmd_init_from_file(cpath, model.ptr, p)
        if self.ptr == NULL:
            raise ProjectorLoadError(f"failed to load projector from {path}: "
                                     + _last_error("not a projector for this model"))
        self._n_embd = llama_model_n_embd_inp(model.ptr)

    def __dealloc__(self):
        if self.ptr != NULL:
            mtmd_free(self.ptr)
            self.ptr = NULL

    def __repr__(self):
        kinds = "+".join(k for k, on in (("vision", self.supports_vision), ("audio", self.supports_audio)) if on)
        return f"Projector({self.path!r}, {kinds})"

    # ---- capabilities --------------------------------------------------------

    @property
    def supports_vision(self):
        return bool(mtmd_support_vision(self.ptr))

    @property
    def supports_audio(self):
        return bool(mtmd_support_audio(self.ptr))

    @property
    def audio_sample_rate(self):
        """Hz that Bitmap.from_audio samples must have; None without audio."""
        cdef int rate = mtmd_get_audio_sample_rate(self.ptr)
        return None if rate < 0 else rate

    @property
    def uses_mrope(self):
        """True when media rows need 4-section positions (Chunk.positions)."""
        return bool(mtmd_decode_use_mrope(self.ptr))

    def non_causal(self, Chunk chunk=None):
        """True when `chunk` (default: an image) must be decoded with
        Context.decode(batch, non_causal=True), alone in its batch."""
        cdef const mtmd_input_chunk * c = NULL
        if chunk is not None:
            self._check_chunk(chunk)
            c = chunk.ptr
        return bool(mtmd_decode_use_non_causal(self.ptr, c))

    @property
    def marker(self):
        """The text that stands for one medium in a prompt."""
        return mtmd_get_marker(self.ptr).decode()

    @property
    def n_embd(self):
        """Width of an embedding row (the text model's input width)."""
        return self._n_embd

    # ---- media ---------------------------------------------------------------

    def bitmap_from_bytes(self, data):
        """Decode an encoded file: JPEG, PNG, BMP, GIF (first frame), TGA,
        PSD, HDR, PNM images (stb_image) or WAV, MP3, FLAC audio (miniaudio,
        resampled to audio_sample_rate). Raises MediaError for anything else
        and for media this projector does not accept. The id is the SHA-256
        of `data`."""
        cdef const unsigned char[::1] buf = memoryview(data).cast("B")
        cdef size_t n = buf.shape[0]
        if n == 0:
            raise MediaError("media data is empty")
        kind = _media_kind(buf)
        if kind == "audio" and not self.supports_audio:
            raise MediaError("this model's projector does not accept audio")
        if kind == "webp":
            raise MediaError("WebP images are not supported (libmtmd decodes WebP only through ffmpeg, "
                             "which this build does not use); send JPEG or PNG")
        if kind != "audio" and not self.supports_vision:
            raise MediaError("this model's projector does not accept images")
        if kind == "jpeg" and not _jpeg_complete(buf):
            raise MediaError("the JPEG image is truncated (no end-of-image marker)")
        cdef mtmd_helper_bitmap_wrapper w
        pyllama_clear_error()
        with nogil:
            w = mtmd_helper_bitmap_init_from_buf(self.ptr, &buf[0], n, False, mtmd_helper_init_opt_default())
        if w.video_ctx != NULL:  # not built with video; never expected
            mtmd_helper_video_free(w.video_ctx)
            if w.bitmap != NULL:
                mtmd_bitmap_free(w.bitmap)
            raise MediaError("video input is not supported")
        if w.bitmap == NULL:
            what = "audio" if kind == "audio" else ("image" if kind != "unknown" else "media")
            raise MediaError(f"could not decode the {what}"
                             + ("" if kind != "unknown" else " (not a supported image or audio format)"))
        cdef Bitmap bm = Bitmap._wrap(w.bitmap, None)
        if bm.nx == 0 or bm.ny == 0:
            raise MediaError("the decoded media is empty")
        return bm

    # ---- tokenize / encode -------------------------------------------------------

    def tokenize(self, text, bitmaps=(), *, bint add_special=True, bint parse_special=True):
        """Split `text` at each `marker` and tokenize it, one media chunk per
        marker from `bitmaps` in order. Returns Chunks."""
        cdef bytes btext = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        cdef list bms = list(bitmaps)
        cdef Bitmap bm
        cdef Py_ssize_t i, nb = len(bms)
        for i in range(nb):
            bm = bms[i]
            if bm is None or bm.ptr == NULL:
                raise TypeError("bitmaps must be Bitmap objects")
            if bm.is_audio and not self.supports_audio:
                raise MediaError("this model's projector does not accept audio")
            if not bm.is_audio and not self.supports_vision:
                raise MediaError("this model's projector does not accept images")
        marker = self.marker.encode()
        n_markers = btext.count(marker)
        if n_markers != nb:
            raise ValueError(f"the prompt has {n_markers} media marker(s) {self.marker!r} "
                             f"but {nb} bitmap(s) were given")
        cdef const mtmd_bitmap ** ptrs = <const mtmd_bitmap **>malloc(max(nb, 1) * sizeof(void *))
        if ptrs == NULL:
            raise MemoryError()
        for i in range(nb):
            ptrs[i] = (<Bitmap>bms[i]).ptr
        cdef mtmd_input_text t
        t.text = btext
        t.text_len = len(btext)
        t.add_special = add_special
        t.parse_special = parse_special
        cdef Chunks chunks = Chunks.__new__(Chunks)
        chunks.projector = self
        cdef int32_t rc
        try:
            chunks.ptr = mtmd_input_chunks_init()
            pyllama_clear_error()
            with nogil:
                rc = mtmd_tokenize(self.ptr, chunks.ptr, &t, ptrs, nb)
        finally:
            free(ptrs)
        if rc == 1:
            raise ValueError(f"the number of media markers does not match the {nb} bitmap(s)")
        if rc != 0:
            raise MediaError("preparing the media failed: " + _last_error(f"mtmd_tokenize returned {rc}"))
        return chunks

    cdef int _check_chunk(self, Chunk chunk) except -1:
        if chunk is None or chunk.owner is None:
            raise TypeError("expected a Chunk")
        if chunk.owner.projector is not self:
            raise ValueError("the chunk was tokenized by another projector")
        return 0

    def encode(self, Chunk chunk not None):
        """Run the encoder over a media chunk with the GIL released. Returns a
        zero-copy float32[n_tokens, n_embd] view of the embeddings, valid
        until the next encode on this projector; .copy() it to keep it."""
        self._check_chunk(chunk)
        if not chunk.is_media:
            raise ValueError("only image and audio chunks are encoded; text chunks go to Batch.add_sequence")
        if self._busy:
            raise RuntimeError("this projector is already encoding in another thread")
        cdef int32_t rc
        cdef float * out
        cdef const mtmd_input_chunk * c = chunk.ptr
        self._busy = True
        try:
            pyllama_clear_error()
            with nogil:
                rc = mtmd_encode_chunk(self.ptr, c)
                out = mtmd_get_output_embd(self.ptr) if rc == 0 else NULL
        finally:
            self._busy = False
        if rc != 0:
            raise EncodeError(f"encoding the {chunk.type} failed: " + _last_error(f"mtmd_encode_chunk returned {rc}"))
        if out == NULL:
            raise EncodeError("the projector returned no embeddings")
        cdef cnp.npy_intp dims[2]
        dims[0] = chunk.n_tokens
        dims[1] = self._n_embd
        cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(2, dims, cnp.NPY_FLOAT32, <void *>out)
        cnp.set_array_base(arr, self)
        return arr

    def eval_chunks(self, Context ctx not None, Chunks chunks not None, int n_past, int seq_id, *,
                    n_batch=None, bint logits_last=True):
        """libmtmd's own evaluation (mtmd_helper_eval_chunks): decode every
        chunk of `chunks` into `seq_id` from `n_past`, encoding media on the
        way, one sequence at a time. The reference for Batch.add_embeddings
        (the engine batches many sequences itself). Returns the next position;
        logits_last leaves the last row's logits at ctx.logits(-1)."""
        if ctx.model is not self.model:
            raise ValueError("the context belongs to another model")
        if chunks.projector is not self:
            raise ValueError("the chunks were tokenized by another projector")
        ctx._check_seq(seq_id, False)
        if n_past < 0:
            raise ValueError(f"invalid position {n_past}")
        cdef int32_t nb = int(n_batch) if n_batch is not None else <int32_t>ctx._n_batch
        if nb <= 0 or <uint32_t>nb > ctx._n_batch:
            raise ValueError(f"n_batch must be in [1, {ctx._n_batch}]")
        if self._busy:
            raise RuntimeError("this projector is already encoding in another thread")
        cdef llama_pos new_past = n_past
        cdef int32_t rc
        self._busy = True
        try:
            pyllama_clear_error()
            with nogil:
                rc = mtmd_helper_eval_chunks(self.ptr, ctx.ptr, chunks.ptr, n_past, seq_id, nb, logits_last,
                                             &new_past)
        finally:
            self._busy = False
        if rc != 0:
            raise DecodeError("evaluating the chunks failed: " + _last_error(f"code {rc}"), rc)
        return new_past


cdef bint _jpeg_complete(const unsigned char[::1] data):
    """A JPEG must end with its end-of-image marker (FF D9), give or take
    trailing padding: stb_image decodes a truncated file without error, as
    grey, which would be a silent wrong answer."""
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t i
    cdef Py_ssize_t lo = n - 4096 if n > 4096 else 2
    for i in range(n - 2, lo - 1, -1):
        if data[i] == 0xFF and data[i + 1] == 0xD9:
            return True
    return False


def default_media_marker():
    """libmtmd's default media marker, "<__media__>"."""
    return mtmd_default_marker().decode()
