# Context: one llama_context (KV cache + compute buffers) with n_seq_max
# sequences. Not thread-safe: one owner thread drives it; only abort() may be
# called from elsewhere.

cdef extern from *:
    """
    static inline int pyllama_atomic_load(const int * p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void pyllama_atomic_store(int * p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    """
    int pyllama_atomic_load(const int * p) nogil
    void pyllama_atomic_store(int * p, int v) nogil


cdef cbool _abort_callback(void * data) noexcept nogil:
    return pyllama_atomic_load(<const int *>data) != 0


_KV_TYPES = {
    "f32": GGML_TYPE_F32, "f16": GGML_TYPE_F16, "bf16": GGML_TYPE_BF16, "q8_0": GGML_TYPE_Q8_0,
    "q4_0": GGML_TYPE_Q4_0, "q4_1": GGML_TYPE_Q4_1, "q5_0": GGML_TYPE_Q5_0, "q5_1": GGML_TYPE_Q5_1,
}
_POOLING = {
    None: LLAMA_POOLING_TYPE_UNSPECIFIED, "unspecified": LLAMA_POOLING_TYPE_UNSPECIFIED,
    "none": LLAMA_POOLING_TYPE_NONE, "mean": LLAMA_POOLING_TYPE_MEAN, "cls": LLAMA_POOLING_TYPE_CLS,
    "last": LLAMA_POOLING_TYPE_LAST, "rank": LLAMA_POOLING_TYPE_RANK,
}
_POOLING_NAMES = {v: k for k, v in _POOLING.items() if k not in (None, "unspecified")}
_FLASH = {
    None: LLAMA_FLASH_ATTN_TYPE_AUTO, "auto": LLAMA_FLASH_ATTN_TYPE_AUTO,
    True: LLAMA_FLASH_ATTN_TYPE_ENABLED, "on": LLAMA_FLASH_ATTN_TYPE_ENABLED, "enabled": LLAMA_FLASH_ATTN_TYPE_ENABLED,
    False: LLAMA_FLASH_ATTN_TYPE_DISABLED, "off": LLAMA_FLASH_ATTN_TYPE_DISABLED, "disabled": LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


cdef cnp.ndarray _float_view(float * ptr, Py_ssize_t n, object owner):
    """A numpy float32 array over llama.cpp memory, keeping `owner` alive."""
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_FLOAT32, <void *>ptr)
    cnp.set_array_base(arr, owner)
    return arr


cdef class Context:
    """A llama_context over a Model: KV cache for n_seq_max sequences."""
    cdef llama_context * ptr
    cdef llama_memory_t mem
    cdef llama_batch_ext * ext
    cdef readonly Model model
    cdef int _abort_flag
    cdef readonly bint kv_unified
    cdef bint _embeddings
    cdef int32_t _n_vocab
    cdef uint32_t _n_seq_max
    cdef uint32_t _n_batch
    cdef uint32_t _n_ubatch

    def __cinit__(self, Model model not None, *, int n_ctx=4096, int n_batch=2048, int n_ubatch=512,
                  int n_seq_max=1, n_threads=None, n_threads_batch=None, bint embeddings=False,
                  pooling=None, flash_attn=None, str type_k="f16", str type_v="f16",
                  bint kv_unified=False, bint swa_full=True, bint offload_kqv=True,
                  float rope_freq_base=0.0, float rope_freq_scale=0.0, bint no_perf=False):
        self.ptr = NULL
        self.ext = NULL
        if model.vocab_only:
            raise ValueError("cannot create a context on a vocab_only model")
        if n_ctx < 0 or n_batch <= 0 or n_ubatch < 0:
            raise ValueError("n_ctx must be >= 0 (0 = training context), n_batch > 0, n_ubatch >= 0")
        if n_seq_max < 1 or n_seq_max > <int>llama_max_parallel_sequences():
            raise ValueError(f"n_seq_max must be in [1, {llama_max_parallel_sequences()}]")
        if type_k not in _KV_TYPES or type_v not in _KV_TYPES:
            raise ValueError(f"type_k/type_v must be one of {sorted(_KV_TYPES)}")
        if pooling not in _POOLING:
            raise ValueError(f"pooling must be one of {[k for k in _POOLING if k]}")
        if flash_attn not in _FLASH:
            raise ValueError("flash_attn must be None/'auto', True/'on' or False/'off'")
        cpu = _os.cpu_count() or 1
        nt = int(n_threads) if n_threads is not None else cpu
        ntb = int(n_threads_batch) if n_threads_batch is not None else nt
        if nt < 1 or ntb < 1:
            raise ValueError("n_threads must be positive")
        self.model = model
        cdef llama_context_params p = llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_ubatch
        p.n_seq_max = n_seq_max
        p.n_threads = nt
        p.n_threads_batch = ntb
        p.embeddings = embeddings
        p.pooling_type = _POOLING[pooling]
        p.flash_attn_type = _FLASH[flash_attn]
        p.type_k = _KV_TYPES[type_k]
        p.type_v = _KV_TYPES[type_v]
        p.kv_unified = kv_unified
        p.swa_full = swa_full
        p.offload_kqv = offload_kqv
        p.rope_freq_base = rope_freq_base
        p.rope_freq_scale = rope_freq_scale
        p.no_perf = no_perf
        self._abort_flag = 0
        p.abort_callback = _abort_callback
        p.abort_callback_data = <void *>&self._abort_flag
        with nogil:
            self.ptr = llama_init_from_model(model.ptr, p)
        if self.ptr == NULL:
            raise LlamaError("failed to create the llama context (see the pyllama.llama_cpp log)")
        self.ext = llama_batch_ext_init(self.ptr)
        if self.ext == NULL:
            llama_free(self.ptr)
            self.ptr = NULL
            raise LlamaError("failed to allocate the batch")
        self.mem = llama_get_memory(self.ptr)
        self.kv_unified = kv_unified
        self._embeddings = embeddings
        self._n_vocab = model._n_vocab
        self._n_seq_max = llama_n_seq_max(self.ptr)
        self._n_batch = llama_n_batch(self.ptr)
        self._n_ubatch = llama_n_ubatch(self.ptr)

    def __dealloc__(self):
        if self.ext != NULL:
            llama_batch_ext_free(self.ext)
            self.ext = NULL
        if self.ptr != NULL:
            llama_free(self.ptr)
            self.ptr = NULL

    def __repr__(self):
        return (f"Context(n_ctx={self.n_ctx}, n_batch={self.n_batch}, n_ubatch={self.n_ubatch}, "
                f"n_seq_max={self.n_seq_max})")

    # ---- sizes -----------------------------------------------------------

    @property
    def n_ctx(self):
        return llama_n_ctx(self.ptr)

    @property
    def n_ctx_seq(self):
        """Cells each sequence may use (n_ctx / n_seq_max unless kv_unified)."""
        return llama_n_ctx_seq(self.ptr)

    @property
    def n_batch(self):
        return self._n_batch

    @property
    def n_ubatch(self):
        return self._n_ubatch

    @property
    def n_seq_max(self):
        return self._n_seq_max

    @property
    def n_threads(self):
        return llama_n_threads(self.ptr)

    @property
    def n_threads_batch(self):
        return llama_n_threads_batch(self.ptr)

    def set_n_threads(self, int n_threads, int n_threads_batch=0):
        if n_threads < 1:
            raise ValueError("n_threads must be positive")
        llama_set_n_threads(self.ptr, n_threads, n_threads_batch if n_threads_batch > 0 else n_threads)

    @property
    def pooling(self):
        return _POOLING_NAMES.get(llama_get_pooling_type(self.ptr), "none")

    @property
    def has_memory(self):
        """False for encoder-only models (BERT and kin): they keep no KV
        cache, so the seq_* memory calls raise and every decode stands alone."""
        return self.mem != NULL

    @property
    def embeddings_enabled(self):
        return self._embeddings

    def set_embeddings(self, bint enabled):
        llama_set_embeddings(self.ptr, enabled)
        self._embeddings = enabled

    def set_causal_attn(self, bint causal):
        llama_set_causal_attn(self.ptr, causal)

    def set_lora(self, adapters):
        """Replace the active LoRA set: an iterable of (LoraAdapter, scale).
        A scale of 0 leaves that adapter out."""
        pairs = list(adapters)
        cdef int n = len(pairs)
        cdef llama_adapter_lora ** ptrs = <llama_adapter_lora **>malloc(max(n, 1) * sizeof(void *))
        cdef float * scales = <float *>malloc(max(n, 1) * sizeof(float))
        cdef LoraAdapter a
        cdef int i, rc
        if ptrs == NULL or scales == NULL:
            free(ptrs)
            free(scales)
            raise MemoryError()
        try:
            for i in range(n):
                a = pairs[i][0]
                if a.model is not self.model or a.ptr == NULL:
                    raise ValueError("adapter belongs to another model")
                ptrs[i] = a.ptr
                scales[i] = float(pairs[i][1])
                if not isfinite(scales[i]):
                    raise ValueError(f"LoRA scale must be finite, got {pairs[i][1]!r}")
            rc = llama_set_adapters_lora(self.ptr, ptrs, n, scales)
            if rc != 0:
                raise LlamaError(f"setting LoRA adapters failed ({rc})")
        finally:
            free(ptrs)
            free(scales)

    # ---- decode ------------------------------------------------------------

    cdef int _fill_ext(self, Batch batch) except -1:
        cdef int n = batch.n
        cdef int i, j, k, idx
        cdef int32_t tok, s
        cdef int stride = batch.n_seq_max
        if n == 0:
            raise ValueError("batch is empty")
        if <uint32_t>n > self._n_batch:
            raise OverflowError(f"batch of {n} tokens exceeds n_batch={self._n_batch}")
        if self._embeddings and <uint32_t>n > self._n_ubatch:
            raise OverflowError(f"an embeddings batch must fit n_ubatch={self._n_ubatch}, got {n} tokens")
        cdef bint embd = batch._kind == _BATCH_EMBD
        if embd and batch._embd_width != llama_model_n_embd_inp(self.model.ptr):
            raise ValueError(f"embedding width {batch._embd_width} does not match the model's "
                             f"input width {llama_model_n_embd_inp(self.model.ptr)}")
        for i in range(n):
            tok = batch.token[i]
            if not embd and (tok < 0 or tok >= self._n_vocab):
                raise IndexError(f"token id {tok} at batch index {i} out of range [0, {self._n_vocab})")
            for j in range(batch.n_seq[i]):
                s = batch.seq[i * stride + j]
                if s < 0 or <uint32_t>s >= self._n_seq_max:
                    raise ValueError(f"sequence id {s} at batch index {i} out of range [0, {self._n_seq_max})")
        llama_batch_ext_clear(self.ext)
        cdef llama_embd row
        cdef const llama_pos * pos
        cdef const int32_t * epos = <const int32_t *>batch._epos.data if embd else NULL
        cdef const size_t * erow = <const size_t *>batch._erow.data if embd else NULL
        row.n_rows = 1
        row.n_embd = batch._embd_width
        for i in range(n):
            if embd:
                row.data = <const float *>erow[i]
                idx = llama_batch_ext_add_embd(self.ext, batch.seq[i * stride], row)
                pos = &epos[i * 4]  # llama.cpp reads 1 position, or 4 for M-RoPE models
            else:
                idx = llama_batch_ext_add_token(self.ext, batch.seq[i * stride], batch.token[i])
                pos = &batch.pos[i]
            if idx != i:
                llama_batch_ext_clear(self.ext)
                raise LlamaError(f"llama_batch_ext_add_token failed at index {i} ({idx})")
            for j in range(1, batch.n_seq[i]):
                if not llama_batch_ext_add_seq(self.ext, i, batch.seq[i * stride + j]):
                    llama_batch_ext_clear(self.ext)
                    raise LlamaError(f"llama_batch_ext_add_seq failed at index {i}")
            if not llama_batch_ext_set_pos(self.ext, i, pos):
                llama_batch_ext_clear(self.ext)
                raise LlamaError(f"llama_batch_ext_set_pos failed at index {i}")
            if batch.output[i] and not llama_batch_ext_set_output_logits(self.ext, i, True):
                llama_batch_ext_clear(self.ext)
                raise LlamaError(f"llama_batch_ext_set_output_logits failed at index {i}")
        return 0

    def decode(self, Batch batch not None, *, bint non_causal=False):
        """Run the model over the batch with the GIL released.

        Raises KVCacheFullError when the KV cache has no room (memory is
        unchanged), DecodeAbortedError after abort(), DecodeError otherwise.
        Logit/embedding views from earlier decodes become invalid.
        `non_causal` lets every row attend to every other row of this batch
        (media of projectors whose Projector.non_causal(chunk) is True); the
        batch must then hold one media chunk and fit in n_ubatch.
        """
        if not non_causal:
            self._process(batch, LLAMA_PROCESS_TYPE_DECODE)
            return
        if <uint32_t>batch.n > self._n_ubatch:
            raise OverflowError(f"a non-causal batch must fit n_ubatch={self._n_ubatch}, got {batch.n} rows")
        llama_set_causal_attn(self.ptr, False)
        try:
            self._process(batch, LLAMA_PROCESS_TYPE_DECODE)
        finally:
            llama_set_causal_attn(self.ptr, True)

    def encode(self, Batch batch not None):
        """Run an encoder (e.g. T5) over the batch."""
        self._process(batch, LLAMA_PROCESS_TYPE_ENCODE)

    cdef _process(self, Batch batch, llama_process_type kind):
        self._fill_ext(batch)
        cdef int rc
        with nogil:
            rc = llama_process(self.ptr, kind, self.ext)
        if rc == 2:
            pyllama_atomic_store(&self._abort_flag, 0)
        if rc != 0:
            _raise_decode(rc)

    def abort(self):
        """Stop the decode running now (or the next one) early; it raises
        DecodeAbortedError. Safe to call from any thread. CPU backend only."""
        pyllama_atomic_store(&self._abort_flag, 1)

    def synchronize(self):
        with nogil:
            llama_synchronize(self.ptr)

    # ---- outputs -------------------------------------------------------------

    def logits(self, int i):
        """float32[n_vocab] view of the logits at batch index `i` (negative
        counts from the last output). Valid until the next decode."""
        cdef float * ptr
        with nogil:
            ptr = llama_get_logits_ith(self.ptr, i)
        if ptr == NULL:
            raise IndexError(f"no logits for batch index {i} (was its logits flag set?)")
        return _float_view(ptr, self._n_vocab, self)

    def embeddings(self, int i):
        """float32[n_embd_out] view of the embedding at batch index `i`."""
        cdef float * ptr
        with nogil:
            ptr = llama_get_embeddings_ith(self.ptr, i)
        if ptr == NULL:
            raise IndexError(f"no embedding for batch index {i} (embeddings off or not an output)")
        return _float_view(ptr, llama_model_n_embd_out(self.model.ptr), self)

    def seq_embeddings(self, int seq):
        """The pooled embedding of a sequence (float32[n_cls_out] for rank
        pooling). Needs a pooling type other than 'none'."""
        self._check_seq(seq, False)
        cdef float * ptr
        with nogil:
            ptr = llama_get_embeddings_seq(self.ptr, seq)
        if ptr == NULL:
            raise LlamaError(f"no pooled embedding for sequence {seq} (pooling is '{self.pooling}')")
        cdef Py_ssize_t n = llama_model_n_embd_out(self.model.ptr)
        if llama_get_pooling_type(self.ptr) == LLAMA_POOLING_TYPE_RANK:
            n = max(<int>llama_model_n_cls_out(self.model.ptr), 1)
        return _float_view(ptr, n, self)

    # ---- memory --------------------------------------------------------------

    cdef int _check_seq(self, int seq, bint allow_all) except -1:
        if allow_all and seq == -1:
            return 0
        if seq < 0 or <uint32_t>seq >= self._n_seq_max:
            raise ValueError(f"sequence id {seq} out of range [0, {self._n_seq_max})")
        return 0

    cdef int _check_mem(self) except -1:
        if self.mem == NULL:
            raise LlamaError("this context has no memory (KV cache)")
        return 0

    def clear(self, bint data=False):
        """Empty the whole KV cache (data=True also zeroes the buffers)."""
        if self.mem != NULL:
            with nogil:
                llama_memory_clear(self.mem, data)

    def seq_rm(self, int seq, int p0=-1, int p1=-1):
        """Remove positions [p0, p1) of `seq` (-1: all sequences / open end).
        Returns False when a partial removal is impossible (recurrent models)."""
        self._check_mem()
        self._check_seq(seq, True)
        return bool(llama_memory_seq_rm(self.mem, seq, p0, p1))

    def seq_cp(self, int src, int dst, int p0=-1, int p1=-1):
        """Make positions [p0, p1) of `src` also belong to `dst`."""
        self._check_mem()
        self._check_seq(src, False)
        self._check_seq(dst, False)
        if not self.kv_unified and src != dst and (p0 > 0 or p1 >= 0):
            raise ValueError("without kv_unified, seq_cp copies whole sequences only (p0=-1, p1=-1)")
        llama_memory_seq_cp(self.mem, src, dst, p0, p1)

    def seq_keep(self, int seq):
        """Drop every sequence but `seq`."""
        self._check_mem()
        self._check_seq(seq, False)
        llama_memory_seq_keep(self.mem, seq)

    cdef int _check_shift(self) except -1:
        cdef int rt = <int>llama_model_rope_type(self.model.ptr)
        if rt in (<int>LLAMA_ROPE_TYPE_MROPE, <int>LLAMA_ROPE_TYPE_IMROPE, <int>LLAMA_ROPE_TYPE_VISION):
            raise ValueError("position shifts are not supported for M-RoPE models")
        if not llama_memory_can_shift(self.mem):
            raise ValueError("this model's memory cannot shift positions")
        return 0

    def seq_add(self, int seq, int p0, int p1, int delta):
        """Add `delta` to positions [p0, p1) of `seq` (applied at next decode)."""
        self._check_mem()
        self._check_seq(seq, False)
        self._check_shift()
        llama_memory_seq_add(self.mem, seq, p0, p1, delta)

    def seq_div(self, int seq, int p0, int p1, int d):
        """Integer-divide positions [p0, p1) of `seq` by `d`."""
        self._check_mem()
        self._check_seq(seq, False)
        self._check_shift()
        if d <= 0:
            raise ValueError("d must be positive")
        llama_memory_seq_div(self.mem, seq, p0, p1, d)

    def seq_pos_min(self, int seq):
        self._check_mem()
        self._check_seq(seq, False)
        return llama_memory_seq_pos_min(self.mem, seq)

    def seq_pos_max(self, int seq):
        """Highest position in `seq`, -1 if empty; the next one is max+1."""
        self._check_mem()
        self._check_seq(seq, False)
        return llama_memory_seq_pos_max(self.mem, seq)

    @property
    def can_shift(self):
        return self.mem != NULL and bool(llama_memory_can_shift(self.mem))

    # ---- state ---------------------------------------------------------------

    def state_get(self):
        """The whole context state as bytes."""
        cdef size_t n = llama_state_get_size(self.ptr)
        cdef bytearray buf = bytearray(n)
        cdef uint8_t * p = <uint8_t *><char *>buf
        cdef size_t got
        with nogil:
            got = llama_state_get_data(self.ptr, p, n)
        return bytes(buf[:got])

    def state_set(self, const uint8_t[::1] data not None):
        cdef size_t n = data.shape[0]
        cdef size_t got
        if n == 0:
            raise ValueError("empty state")
        with nogil:
            got = llama_state_set_data(self.ptr, &data[0], n)
        if got == 0:
            raise LlamaError("restoring the context state failed")
        return got

    def state_seq_get(self, int seq, unsigned int flags=0):
        """One sequence's KV state as bytes (flags: 1 partial-only)."""
        self._check_seq(seq, False)
        cdef size_t n = llama_state_seq_get_size_ext(self.ptr, seq, flags)
        # Written straight into the bytes object we return (not yet shared):
        # a state can be hundreds of MiB, and each extra copy is resident.
        cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>n)
        cdef uint8_t * p = <uint8_t *>PyBytes_AS_STRING(out)
        cdef size_t got
        with nogil:
            got = llama_state_seq_get_data_ext(self.ptr, p, n, seq, flags)
        if got == 0 and n != 0:
            raise LlamaError(f"saving the state of sequence {seq} failed")
        return out if got == n else out[:got]

    def state_seq_set(self, const uint8_t[::1] data not None, int seq, unsigned int flags=0):
        """Restore bytes from state_seq_get into `seq` (cleared first)."""
        self._check_seq(seq, False)
        cdef size_t n = data.shape[0]
        cdef size_t got
        if n == 0:
            raise ValueError("empty state")
        with nogil:
            got = llama_state_seq_set_data_ext(self.ptr, &data[0], n, seq, flags)
        if got == 0:
            raise LlamaError(f"restoring the state of sequence {seq} failed (no room or bad data)")
        return got

    # ---- perf ----------------------------------------------------------------

    def perf(self):
        """llama.cpp's own counters (times in ms). Multi-token decodes count
        as prompt evaluation."""
        cdef llama_perf_context_data d = llama_perf_context(self.ptr)
        return {"t_start_ms": d.t_start_ms, "t_load_ms": d.t_load_ms, "t_p_eval_ms": d.t_p_eval_ms,
                "t_eval_ms": d.t_eval_ms, "n_p_eval": d.n_p_eval, "n_eval": d.n_eval, "n_reused": d.n_reused}

    def perf_reset(self):
        llama_perf_context_reset(self.ptr)

    # ---- memory per device -------------------------------------------------

    def memory_breakdown(self):
        """Bytes this context and its model hold per buffer type: weights
        (``model``), KV cache (``context``) and compute buffers, with the device
        each buffer type lives on (an RPC device's description is its endpoint)."""
        cdef cppmap[ggml_backend_buffer_type_t, llama_memory_breakdown_data] parts
        parts = llama_get_memory_breakdown(self.ptr)
        cdef ggml_backend_dev_t dev
        out = []
        for item in parts:
            dev = ggml_backend_buft_get_device(item.first)
            name = ggml_backend_buft_name(item.first).decode("utf-8", "replace")
            out.append({
                "buffer_type": name,
                "device": ggml_backend_dev_name(dev).decode("utf-8", "replace") if dev != NULL else "",
                "description": ggml_backend_dev_description(dev).decode("utf-8", "replace") if dev != NULL else "",
                "model": item.second.model, "context": item.second.context, "compute": item.second.compute,
            })
        return out
