# Model: one loaded GGUF (weights + vocabulary). Read-only after load, so
# tokenizer calls are safe from any thread while a context decodes.

_LOAD_MODES = {
    "auto": LLAMA_LOAD_MODE_AUTO, "none": LLAMA_LOAD_MODE_NONE, "mmap": LLAMA_LOAD_MODE_MMAP,
    "mlock": LLAMA_LOAD_MODE_MLOCK, "mmap_mlock": LLAMA_LOAD_MODE_MMAP_MLOCK,
    "direct_io": LLAMA_LOAD_MODE_DIRECT_IO,
}
_SPLIT_MODES = {
    "none": LLAMA_SPLIT_MODE_NONE, "layer": LLAMA_SPLIT_MODE_LAYER,
    "row": LLAMA_SPLIT_MODE_ROW, "tensor": LLAMA_SPLIT_MODE_TENSOR,
}


cdef inline object _token_or_none(llama_token tok):
    return None if tok == LLAMA_TOKEN_NULL else tok


cdef class LoraAdapter:
    """A LoRA adapter loaded against a model; lives as long as the model."""
    cdef llama_adapter_lora * ptr
    cdef readonly Model model
    cdef readonly str path

    def __repr__(self):
        return f"LoraAdapter({self.path!r})"


cdef class Model:
    """A GGUF model loaded with llama_model_load_from_file."""
    cdef llama_model * ptr
    cdef const llama_vocab * vocab
    cdef readonly str path
    cdef readonly bint vocab_only
    cdef int32_t _n_vocab
    cdef object _metadata

    def __cinit__(self, path, *, int n_gpu_layers=-1, bint vocab_only=False, str load_mode="auto",
                  str split_mode="layer", int main_gpu=0, bint check_tensors=False,
                  bint use_extra_bufts=True, tensor_split=None):
        self.ptr = NULL
        path = _os.fspath(path)
        if not _os.path.isfile(path):
            raise FileNotFoundError(f"model file not found: {path}")
        if load_mode not in _LOAD_MODES:
            raise ValueError(f"load_mode must be one of {sorted(_LOAD_MODES)}")
        if split_mode not in _SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {sorted(_SPLIT_MODES)}")
        self.path = path
        self.vocab_only = vocab_only
        cdef llama_model_params params = llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.vocab_only = vocab_only
        params.load_mode = _LOAD_MODES[load_mode]
        params.split_mode = _SPLIT_MODES[split_mode]
        params.main_gpu = main_gpu
        params.check_tensors = check_tensors
        params.use_extra_bufts = use_extra_bufts
        # Proportions of the offloaded layers per device (llama_max_devices
        # floats; all zero = split by free memory). Kept alive across the load.
        cdef size_t n_split = llama_max_devices()
        cdef vector[float] split
        if tensor_split:
            shares = [float(x) for x in tensor_split]
            if len(shares) > n_split:
                raise ValueError(f"tensor_split has {len(shares)} entries; this build allows {n_split}")
            if any(not isfinite(x) or x < 0 for x in shares) or sum(shares) <= 0:
                raise ValueError("tensor_split entries must be finite, >= 0, and not all zero")
            split.assign(n_split, 0.0)
            for i, x in enumerate(shares):
                split[i] = x
            params.tensor_split = split.data()
        cdef bytes bpath = path.encode()
        cdef const char * cpath = bpath
        with nogil:
            self.ptr = llama_model_load_from_file(cpath, params)
        if self.ptr == NULL:
            raise ModelLoadError(f"failed to load model from {path}")
        self.vocab = llama_model_get_vocab(self.ptr)
        if self.vocab == NULL:
            llama_model_free(self.ptr)
            self.ptr = NULL
            raise ModelLoadError(f"model has no vocabulary: {path}")
        self._n_vocab = llama_vocab_n_tokens(self.vocab)

    def __dealloc__(self):
        # LoRA adapters are freed by llama_model_free; LoraAdapter objects
        # hold a reference to their model, so none outlives it.
        if self.ptr != NULL:
            llama_model_free(self.ptr)
            self.ptr = NULL

    def __repr__(self):
        return f"Model({self.path!r}, n_params={self.n_params}, n_vocab={self.n_vocab})"

    cdef inline int _check_token(self, llama_token tok) except -1:
        if tok < 0 or tok >= self._n_vocab:
            raise IndexError(f"token id {tok} out of range [0, {self._n_vocab})")
        return 0

    # ---- metadata ----------------------------------------------------------

    @property
    def metadata(self):
        """Every GGUF key/value as Python values (arrays as lists)."""
        if self._metadata is None:
            self._metadata = read_gguf_metadata(self.path)
        return self._metadata

    def meta_str(self, str key):
        """One metadata value as llama.cpp renders it (str), or None."""
        cdef bytes bkey = key.encode()
        cdef int32_t n = llama_model_meta_val_str(self.ptr, bkey, NULL, 0)
        if n < 0:
            return None
        buf = bytearray(n + 1)
        llama_model_meta_val_str(self.ptr, bkey, <char *>buf, n + 1)
        return bytes(buf[:n]).decode("utf-8", "replace")

    @property
    def description(self):
        cdef char buf[256]
        cdef int32_t n = llama_model_desc(self.ptr, buf, sizeof(buf))
        return buf[:max(n, 0)].decode("utf-8", "replace") if n > 0 else ""

    @property
    def architecture(self):
        return self.meta_str("general.architecture")

    @property
    def n_ctx_train(self):
        return llama_model_n_ctx_train(self.ptr)

    @property
    def n_embd(self):
        return llama_model_n_embd(self.ptr)

    @property
    def n_embd_out(self):
        return llama_model_n_embd_out(self.ptr)

    @property
    def n_layer(self):
        return llama_model_n_layer(self.ptr)

    @property
    def n_head(self):
        return llama_model_n_head(self.ptr)

    @property
    def n_head_kv(self):
        return llama_model_n_head_kv(self.ptr)

    @property
    def n_swa(self):
        return llama_model_n_swa(self.ptr)

    @property
    def n_cls_out(self):
        return llama_model_n_cls_out(self.ptr)

    @property
    def cls_labels(self):
        """The classifier head's output labels (``<arch>.classifier.output_labels``),
        one per rank output; None where the GGUF names none."""
        cdef const char * label
        out = []
        for i in range(llama_model_n_cls_out(self.ptr)):
            label = llama_model_cls_label(self.ptr, i)
            out.append(None if label == NULL else label.decode("utf-8", "replace"))
        return out

    @property
    def n_vocab(self):
        return self._n_vocab

    @property
    def n_params(self):
        return llama_model_n_params(self.ptr)

    @property
    def size(self):
        """Bytes of all tensors."""
        return llama_model_size(self.ptr)

    @property
    def ftype(self):
        return llama_ftype_name(llama_model_ftype(self.ptr)).decode()

    @property
    def has_encoder(self):
        return bool(llama_model_has_encoder(self.ptr))

    @property
    def has_decoder(self):
        return bool(llama_model_has_decoder(self.ptr))

    @property
    def is_recurrent(self):
        return bool(llama_model_is_recurrent(self.ptr))

    @property
    def is_hybrid(self):
        return bool(llama_model_is_hybrid(self.ptr))

    @property
    def rope_type(self):
        return <int>llama_model_rope_type(self.ptr)

    @property
    def vocab_type(self):
        return <int>llama_get_vocab_type(self.vocab)

    def chat_template_named(self, name=None):
        """The GGUF chat template (`name`: None for the default, or a variant
        such as "tool_use"), or None when the model has none."""
        cdef const char * tmpl
        if name is None:
            tmpl = llama_model_chat_template(self.ptr, NULL)
        else:
            bname = name.encode()
            tmpl = llama_model_chat_template(self.ptr, bname)
        return None if tmpl == NULL else tmpl.decode("utf-8", "replace")

    @property
    def chat_template(self):
        return self.chat_template_named(None)

    # ---- special tokens ----------------------------------------------------

    @property
    def token_bos(self):
        return _token_or_none(llama_vocab_bos(self.vocab))

    @property
    def token_eos(self):
        return _token_or_none(llama_vocab_eos(self.vocab))

    @property
    def token_eot(self):
        return _token_or_none(llama_vocab_eot(self.vocab))

    @property
    def token_sep(self):
        return _token_or_none(llama_vocab_sep(self.vocab))

    @property
    def token_nl(self):
        return _token_or_none(llama_vocab_nl(self.vocab))

    @property
    def token_pad(self):
        return _token_or_none(llama_vocab_pad(self.vocab))

    @property
    def token_mask(self):
        return _token_or_none(llama_vocab_mask(self.vocab))

    @property
    def token_fim_pre(self):
        return _token_or_none(llama_vocab_fim_pre(self.vocab))

    @property
    def token_fim_suf(self):
        return _token_or_none(llama_vocab_fim_suf(self.vocab))

    @property
    def token_fim_mid(self):
        return _token_or_none(llama_vocab_fim_mid(self.vocab))

    @property
    def token_fim_pad(self):
        return _token_or_none(llama_vocab_fim_pad(self.vocab))

    @property
    def token_fim_rep(self):
        return _token_or_none(llama_vocab_fim_rep(self.vocab))

    @property
    def token_fim_sep(self):
        return _token_or_none(llama_vocab_fim_sep(self.vocab))

    @property
    def add_bos(self):
        return bool(llama_vocab_get_add_bos(self.vocab))

    @property
    def add_eos(self):
        return bool(llama_vocab_get_add_eos(self.vocab))

    @property
    def add_sep(self):
        return bool(llama_vocab_get_add_sep(self.vocab))

    def is_eog(self, int tok):
        """True for tokens that end generation (EOS, EOT, ...)."""
        if tok < 0 or tok >= self._n_vocab:
            return False
        return bool(llama_vocab_is_eog(self.vocab, tok))

    def is_control(self, int tok):
        self._check_token(tok)
        return bool(llama_vocab_is_control(self.vocab, tok))

    def token_text(self, int tok):
        self._check_token(tok)
        return llama_vocab_get_text(self.vocab, tok).decode("utf-8", "replace")

    def token_score(self, int tok):
        self._check_token(tok)
        return llama_vocab_get_score(self.vocab, tok)

    def token_attr(self, int tok):
        self._check_token(tok)
        return <int>llama_vocab_get_attr(self.vocab, tok)

    # ---- tokenizer -----------------------------------------------------------

    def tokenize(self, text, bint add_special=True, bint parse_special=False):
        """Text (str or UTF-8 bytes) -> int32 numpy array of token ids."""
        cdef bytes btext = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if len(btext) > 0x7FFFFFF0:
            raise ValueError("text too long to tokenize")
        cdef const char * ctext = btext
        cdef int32_t n_text = <int32_t>len(btext)
        cdef int32_t cap = n_text + 8
        cdef cnp.ndarray[cnp.int32_t, ndim=1] out = np.empty(cap, dtype=np.int32)
        cdef int32_t n
        with nogil:
            n = llama_tokenize(self.vocab, ctext, n_text, <llama_token *>out.data, cap, add_special, parse_special)
        if n < 0:
            if n == -2147483648:
                raise ValueError("tokenization result exceeds the int32 limit")
            cap = -n
            out = np.empty(cap, dtype=np.int32)
            with nogil:
                n = llama_tokenize(self.vocab, ctext, n_text, <llama_token *>out.data, cap, add_special, parse_special)
            if n < 0:
                raise LlamaError("tokenization failed")
        return out[:n].copy() if n < cap else out

    def token_to_piece(self, int tok, bint special=True, int lstrip=0):
        """One token's bytes; may be a partial UTF-8 sequence."""
        self._check_token(tok)
        cdef char buf[128]
        cdef int32_t n = llama_token_to_piece(self.vocab, tok, buf, sizeof(buf), lstrip, special)
        if n >= 0:
            return PyBytes_FromStringAndSize(buf, n)
        cdef bytearray big = bytearray(-n)
        n = llama_token_to_piece(self.vocab, tok, <char *>big, len(big), lstrip, special)
        if n < 0:
            raise LlamaError(f"token_to_piece failed for token {tok}")
        return bytes(big[:n])

    def detokenize(self, tokens, bint remove_special=False, bint unparse_special=False):
        """Token ids -> str (invalid UTF-8 replaced)."""
        cdef cnp.ndarray[cnp.int32_t, ndim=1] arr = np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1)
        cdef int32_t n_tok = <int32_t>arr.shape[0]
        if n_tok == 0:
            return ""
        if arr.min() < 0 or arr.max() >= self._n_vocab:
            raise IndexError(f"token id out of range [0, {self._n_vocab})")
        cdef int32_t cap = n_tok * 8 + 16
        cdef bytearray buf = bytearray(cap)
        cdef char * cbuf = <char *>buf
        cdef int32_t n
        with nogil:
            n = llama_detokenize(self.vocab, <const llama_token *>arr.data, n_tok, cbuf, cap,
                                 remove_special, unparse_special)
        if n < 0:
            cap = -n
            buf = bytearray(cap)
            cbuf = <char *>buf
            with nogil:
                n = llama_detokenize(self.vocab, <const llama_token *>arr.data, n_tok, cbuf, cap,
                                     remove_special, unparse_special)
            if n < 0:
                raise LlamaError("detokenize failed")
        return bytes(buf[:n]).decode("utf-8", "replace")

    # ---- adapters ------------------------------------------------------------

    def load_lora(self, path):
        """Load a LoRA adapter (GGUF) for this model. llama.cpp logs why one
        does not fit (other architecture, missing tensor, shape)."""
        path = _os.fspath(path)
        if not _os.path.isfile(path):
            raise FileNotFoundError(f"adapter file not found: {path}")
        cdef bytes bpath = path.encode()
        cdef const char * cpath = bpath
        cdef llama_adapter_lora * ptr
        with nogil:
            ptr = llama_adapter_lora_init(self.ptr, cpath)
        if ptr == NULL:
            raise ModelLoadError(f"failed to load LoRA adapter {path} for model {self.path}")
        cdef LoraAdapter adapter = LoraAdapter.__new__(LoraAdapter)
        adapter.ptr = ptr
        adapter.model = self
        adapter.path = path
        return adapter
