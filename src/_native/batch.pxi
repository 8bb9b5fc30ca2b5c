# Batch: token / position / sequence / output arrays owned by numpy, reused
# between steps. Context.decode copies them into llama.cpp's llama_batch_ext
# (bound to the context) after checking every value, so a mistake becomes a
# Python exception instead of an abort inside llama.cpp.
#
# A batch holds either token ids or embedding rows (media from a Projector),
# never both: llama.cpp evaluates one kind per decode. Embedding rows are not
# copied here; the batch keeps their arrays alive and llama.cpp copies them
# when the batch is decoded.

cdef enum:
    _BATCH_EMPTY = 0
    _BATCH_TOKENS = 1
    _BATCH_EMBD = 2

cdef class Batch:
    """Up to `capacity` tokens, each in up to `n_seq_max` sequences."""
    cdef readonly int capacity
    cdef readonly int n_seq_max
    cdef int n
    cdef cnp.ndarray _token
    cdef cnp.ndarray _pos
    cdef cnp.ndarray _n_seq
    cdef cnp.ndarray _seq
    cdef cnp.ndarray _output
    cdef int32_t * token
    cdef int32_t * pos
    cdef int32_t * n_seq
    cdef int32_t * seq
    cdef int8_t * output
    cdef int _kind
    cdef int _embd_width
    cdef cnp.ndarray _epos
    cdef cnp.ndarray _erow
    cdef list _embd_refs

    def __cinit__(self, int capacity, *, int n_seq_max=1):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        if n_seq_max <= 0:
            raise ValueError("n_seq_max must be positive")
        self.capacity = capacity
        self.n_seq_max = n_seq_max
        self.n = 0
        self._token = np.zeros(capacity, dtype=np.int32)
        self._pos = np.zeros(capacity, dtype=np.int32)
        self._n_seq = np.zeros(capacity, dtype=np.int32)
        self._seq = np.zeros((capacity, n_seq_max), dtype=np.int32)
        self._output = np.zeros(capacity, dtype=np.int8)
        self.token = <int32_t *>self._token.data
        self.pos = <int32_t *>self._pos.data
        self.n_seq = <int32_t *>self._n_seq.data
        self.seq = <int32_t *>self._seq.data
        self.output = <int8_t *>self._output.data
        self._kind = _BATCH_EMPTY
        self._embd_width = 0
        self._embd_refs = []

    def __len__(self):
        return self.n

    def __repr__(self):
        return f"Batch(n={self.n}, capacity={self.capacity}, n_seq_max={self.n_seq_max})"

    def clear(self):
        self.n = 0
        if self._kind == _BATCH_EMBD:
            self._embd_width = 0
            self._embd_refs = []
        self._kind = _BATCH_EMPTY

    cdef int _want(self, int kind) except -1:
        if self._kind != _BATCH_EMPTY and self._kind != kind:
            raise ValueError("a batch holds either token ids or embeddings, not both; "
                             "decode them in separate batches")
        return 0

    @property
    def has_embeddings(self):
        """True when the batch holds embedding rows instead of token ids."""
        return self._kind == _BATCH_EMBD

    def add(self, int token, int pos, seq_ids, bint logits=False):
        """Append one token at `pos` in the sequence(s) `seq_ids` (an int or a
        sequence of ints); `logits` requests its output. Returns its index."""
        if self.n >= self.capacity:
            raise OverflowError(f"batch is full ({self.capacity} tokens)")
        self._want(_BATCH_TOKENS)
        if token < 0:
            raise ValueError(f"invalid token id {token}")
        if pos < 0:
            raise ValueError(f"invalid position {pos}")
        if isinstance(seq_ids, int):
            seq_ids = (seq_ids,)
        cdef int k = len(seq_ids)
        if k == 0 or k > self.n_seq_max:
            raise ValueError(f"a token belongs to 1..{self.n_seq_max} sequences, got {k}")
        cdef int i = self.n
        cdef int j
        for j in range(k):
            s = seq_ids[j]
            if s < 0:
                raise ValueError(f"invalid sequence id {s}")
            self.seq[i * self.n_seq_max + j] = s
        self.token[i] = token
        self.pos[i] = pos
        self.n_seq[i] = k
        self.output[i] = logits
        self.n += 1
        self._kind = _BATCH_TOKENS
        return i

    def add_sequence(self, tokens, int pos0, int seq_id, bint logits_last=True):
        """Append many tokens of one sequence at positions pos0, pos0+1, ...
        Returns the index of the first one."""
        cdef cnp.ndarray[cnp.int32_t, ndim=1] arr = np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1)
        cdef int m = arr.shape[0]
        if m == 0:
            return self.n
        self._want(_BATCH_TOKENS)
        if self.n + m > self.capacity:
            raise OverflowError(f"{m} tokens do not fit: {self.n} of {self.capacity} used")
        if pos0 < 0:
            raise ValueError(f"invalid position {pos0}")
        if seq_id < 0:
            raise ValueError(f"invalid sequence id {seq_id}")
        if arr.min() < 0:
            raise ValueError("invalid token id in tokens")
        cdef int start = self.n
        cdef int j
        memcpy(self.token + start, arr.data, m * sizeof(int32_t))
        for j in range(m):
            self.pos[start + j] = pos0 + j
            self.n_seq[start + j] = 1
            self.seq[(start + j) * self.n_seq_max] = seq_id
            self.output[start + j] = 0
        if logits_last:
            self.output[start + m - 1] = 1
        self.n += m
        self._kind = _BATCH_TOKENS
        return start

    def add_arrays(self, tokens, positions, seq_ids, logits):
        """Bulk append from equal-length arrays: tokens, positions, one
        sequence id per token, and output flags. Returns the first index."""
        cdef cnp.ndarray[cnp.int32_t, ndim=1] t = np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1)
        cdef cnp.ndarray[cnp.int32_t, ndim=1] p = np.ascontiguousarray(positions, dtype=np.int32).reshape(-1)
        cdef cnp.ndarray[cnp.int32_t, ndim=1] s = np.ascontiguousarray(seq_ids, dtype=np.int32).reshape(-1)
        cdef cnp.ndarray[cnp.int8_t, ndim=1] o = np.ascontiguousarray(logits, dtype=np.int8).reshape(-1)
        cdef int m = t.shape[0]
        if p.shape[0] != m or s.shape[0] != m or o.shape[0] != m:
            raise ValueError("tokens, positions, seq_ids and logits must have the same length")
        if m == 0:
            return self.n
        self._want(_BATCH_TOKENS)
        if self.n + m > self.capacity:
            raise OverflowError(f"{m} tokens do not fit: {self.n} of {self.capacity} used")
        if t.min() < 0 or p.min() < 0 or s.min() < 0:
            raise ValueError("token ids, positions and sequence ids must be non-negative")
        cdef int start = self.n
        cdef int j
        memcpy(self.token + start, t.data, m * sizeof(int32_t))
        memcpy(self.pos + start, p.data, m * sizeof(int32_t))
        for j in range(m):
            self.n_seq[start + j] = 1
            self.seq[(start + j) * self.n_seq_max] = s[j]
            self.output[start + j] = 1 if o[j] else 0
        self.n += m
        self._kind = _BATCH_TOKENS
        return start

    def add_embeddings(self, embd, positions, int seq_id, bint logits_last=False):
        """Append embedding rows (float32[n, n_embd], e.g. Projector.encode's
        output) for one sequence. `positions` is the first position (rows get
        pos, pos+1, ...) or Chunk.positions(pos0): int32[n, 4] for M-RoPE.
        Returns the index of the first row."""
        cdef cnp.ndarray[cnp.float32_t, ndim=2] e = np.ascontiguousarray(embd, dtype=np.float32)
        cdef int m = e.shape[0]
        cdef int width = e.shape[1]
        cdef int start = self.n
        cdef int j, k
        cdef cnp.ndarray[cnp.int32_t, ndim=2] p
        if m == 0:
            return self.n
        self._want(_BATCH_EMBD)
        if width <= 0:
            raise ValueError("embedding rows must not be empty")
        if self._embd_width != 0 and width != self._embd_width:
            raise ValueError(f"embedding width {width} differs from this batch's {self._embd_width}")
        if self.n + m > self.capacity:
            raise OverflowError(f"{m} embeddings do not fit: {self.n} of {self.capacity} used")
        if seq_id < 0:
            raise ValueError(f"invalid sequence id {seq_id}")
        if isinstance(positions, (int, np.integer)):
            if positions < 0:
                raise ValueError(f"invalid position {positions}")
            p = np.repeat((int(positions) + np.arange(m, dtype=np.int32))[:, None], 4, axis=1).astype(np.int32)
        else:
            p = np.ascontiguousarray(positions, dtype=np.int32)
            if p.shape[0] != m or p.shape[1] != 4:
                raise ValueError(f"positions must be int32[{m}, 4], got {tuple(np.shape(positions))}")
            if p.min() < 0:
                raise ValueError("positions must be non-negative")
        if self._epos is None:
            self._epos = np.zeros((self.capacity, 4), dtype=np.int32)
            self._erow = np.zeros(self.capacity, dtype=np.uintp)
        cdef int32_t * ep = <int32_t *>self._epos.data
        cdef size_t * rows = <size_t *>self._erow.data
        cdef char * base = <char *>e.data
        for j in range(m):
            for k in range(4):
                ep[(start + j) * 4 + k] = p[j, k]
            rows[start + j] = <size_t>(base + <size_t>j * <size_t>width * sizeof(float))
            self.token[start + j] = -1
            self.pos[start + j] = p[j, 0]
            self.n_seq[start + j] = 1
            self.seq[(start + j) * self.n_seq_max] = seq_id
            self.output[start + j] = 0
        if logits_last:
            self.output[start + m - 1] = 1
        self._embd_refs.append(e)
        self._embd_width = width
        self._kind = _BATCH_EMBD
        self.n += m
        return start

    def set_logits(self, int i, bint value=True):
        if i < 0 or i >= self.n:
            raise IndexError(f"batch index {i} out of range [0, {self.n})")
        self.output[i] = value

    @property
    def tokens(self):
        """Token ids (-1 for embedding rows)."""
        return self._token[:self.n]

    @property
    def positions(self):
        return self._pos[:self.n]

    @property
    def logits_flags(self):
        return self._output[:self.n].astype(bool)

    def seq_ids(self, int i):
        if i < 0 or i >= self.n:
            raise IndexError(f"batch index {i} out of range [0, {self.n})")
        return [self.seq[i * self.n_seq_max + j] for j in range(self.n_seq[i])]
