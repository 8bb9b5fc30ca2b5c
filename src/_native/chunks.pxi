# Chunks: a prompt with media markers, tokenized by a Projector into text
# runs and media chunks (mtmd_input_chunks). A Chunk is a view into its
# Chunks and keeps it (and the projector) alive.

_CHUNK_TYPES = {MTMD_INPUT_CHUNK_TYPE_TEXT: "text", MTMD_INPUT_CHUNK_TYPE_IMAGE: "image",
                MTMD_INPUT_CHUNK_TYPE_AUDIO: "audio"}


cdef class Chunks:
    """The chunks of one tokenized multimodal prompt, in order."""
    cdef mtmd_input_chunks * ptr
    cdef readonly Projector projector

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self):
        raise TypeError("Chunks come from Projector.tokenize")

    def __dealloc__(self):
        if self.ptr != NULL:
            mtmd_input_chunks_free(self.ptr)
            self.ptr = NULL

    def __len__(self):
        return mtmd_input_chunks_size(self.ptr)

    def __getitem__(self, Py_ssize_t i):
        cdef Py_ssize_t n = mtmd_input_chunks_size(self.ptr)
        if i < 0:
            i += n
        if i < 0 or i >= n:
            raise IndexError(f"chunk index out of range [0, {n})")
        cdef const mtmd_input_chunk * c = mtmd_input_chunks_get(self.ptr, i)
        if c == NULL:
            raise LlamaError(f"mtmd returned no chunk at index {i}")
        cdef Chunk chunk = Chunk.__new__(Chunk)
        chunk.ptr = c
        chunk.owner = self
        chunk.index = i
        return chunk

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        return f"Chunks({[c.type for c in self]}, n_tokens={self.n_tokens})"

    @property
    def n_tokens(self):
        """KV cells the whole prompt takes (text tokens + media embeddings)."""
        return sum(c.n_tokens for c in self)

    @property
    def n_pos(self):
        """Positions the whole prompt advances (differs from n_tokens for M-RoPE)."""
        return sum(c.n_pos for c in self)


cdef class Chunk:
    """One text run or one image/audio of a Chunks."""
    cdef const mtmd_input_chunk * ptr
    cdef readonly Chunks owner
    cdef readonly Py_ssize_t index

    def __init__(self):
        raise TypeError("a Chunk comes from indexing Chunks")

    def __repr__(self):
        return f"Chunk({self.type}, n_tokens={self.n_tokens}, n_pos={self.n_pos})"

    @property
    def type(self):
        """"text", "image" or "audio"."""
        return _CHUNK_TYPES.get(mtmd_input_chunk_get_type(self.ptr), "unknown")

    @property
    def is_media(self):
        return mtmd_input_chunk_get_type(self.ptr) != MTMD_INPUT_CHUNK_TYPE_TEXT

    @property
    def n_tokens(self):
        """Token ids (text) or embedding rows (media) this chunk puts in the KV cache."""
        return mtmd_input_chunk_get_n_tokens(self.ptr)

    @property
    def n_pos(self):
        """How far the chunk advances the position (max(t, h, w) for M-RoPE images)."""
        return mtmd_input_chunk_get_n_pos(self.ptr)

    @property
    def id(self):
        """The media's id (its Bitmap.id, by default a SHA-256); None for text."""
        cdef const char * s = mtmd_input_chunk_get_id(self.ptr)
        return None if s == NULL or s[0] == 0 else s.decode("utf-8", "replace")

    @property
    def tokens(self):
        """The text chunk's token ids (int32 copy); empty for media."""
        cdef size_t n = 0
        cdef const llama_token * toks
        if mtmd_input_chunk_get_type(self.ptr) != MTMD_INPUT_CHUNK_TYPE_TEXT:
            return np.empty(0, dtype=np.int32)
        toks = mtmd_input_chunk_get_tokens_text(self.ptr, &n)
        cdef cnp.ndarray out = np.empty(n, dtype=np.int32)
        if n > 0:
            if toks == NULL:
                raise LlamaError("mtmd returned no tokens for a text chunk")
            memcpy(out.data, toks, n * sizeof(llama_token))
        return out

    def positions(self, int pos0):
        """int32[n_tokens, 4] positions for Batch.add_embeddings when the
        chunk starts at `pos0`: the 2-D (t, y, x, z) layout of an M-RoPE
        image, else pos0, pos0+1, ... in every column."""
        if pos0 < 0:
            raise ValueError(f"invalid position {pos0}")
        cdef size_t n = mtmd_input_chunk_get_n_tokens(self.ptr)
        cdef cnp.ndarray[cnp.int32_t, ndim=2] out
        cdef const mtmd_image_tokens * img
        cdef mtmd_decoder_pos p
        cdef size_t i
        if (self.owner.projector.uses_mrope
                and mtmd_input_chunk_get_type(self.ptr) == MTMD_INPUT_CHUNK_TYPE_IMAGE):
            img = mtmd_input_chunk_get_tokens_image(self.ptr)
            if img == NULL:
                raise LlamaError("mtmd returned no image tokens for an image chunk")
            out = np.empty((n, 4), dtype=np.int32)
            for i in range(n):
                p = mtmd_image_tokens_get_decoder_pos(img, pos0, i)
                # section order as llama.cpp's M-RoPE reads it: t, y, x, z
                out[i, 0] = p.t
                out[i, 1] = p.y
                out[i, 2] = p.x
                out[i, 3] = p.z
            return out
        return np.repeat((pos0 + np.arange(n, dtype=np.int32))[:, None], 4, axis=1).astype(np.int32)
