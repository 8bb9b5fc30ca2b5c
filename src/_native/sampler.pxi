# Sampler: a llama_sampler chain. Each add_* appends one of llama.cpp's
# samplers (the chain owns it) and returns self, so chains read top-down:
#     Sampler().add_top_k(40).add_top_p(0.9).add_temp(0.7).add_dist(seed)

cdef class Sampler:
    """A chain of llama.cpp samplers; the last one must pick a token
    (greedy, dist, mirostat, mirostat_v2 or adaptive_p)."""
    cdef llama_sampler * chain
    cdef list _names
    cdef vector[llama_token_data] _cur

    def __cinit__(self, *, bint no_perf=True):
        cdef llama_sampler_chain_params p = llama_sampler_chain_default_params()
        p.no_perf = no_perf
        self.chain = llama_sampler_chain_init(p)
        if self.chain == NULL:
            raise MemoryError("llama_sampler_chain_init failed")
        self._names = []

    def __dealloc__(self):
        if self.chain != NULL:
            llama_sampler_free(self.chain)
            self.chain = NULL

    def __len__(self):
        return llama_sampler_chain_n(self.chain)

    def __repr__(self):
        return f"Sampler({' -> '.join(self.names)})"

    @property
    def names(self):
        cdef int i
        cdef llama_sampler * s
        out = []
        for i in range(llama_sampler_chain_n(self.chain)):
            s = llama_sampler_chain_get(self.chain, i)
            out.append(llama_sampler_name(s).decode() if s != NULL else "?")
        return out

    cdef Sampler _push(self, llama_sampler * s, str what):
        if s == NULL:
            raise ValueError(f"could not create the {what} sampler")
        llama_sampler_chain_add(self.chain, s)
        return self

    # ---- final pickers -----------------------------------------------------

    def add_greedy(self):
        return self._push(llama_sampler_init_greedy(), "greedy")

    def add_dist(self, seed=None):
        """Random pick from the distribution; seed None = random seed."""
        cdef uint32_t s = LLAMA_DEFAULT_SEED if seed is None else <uint32_t>(int(seed) & 0xFFFFFFFF)
        return self._push(llama_sampler_init_dist(s), "dist")

    def add_mirostat(self, int n_vocab, seed=None, float tau=5.0, float eta=0.1, int m=100):
        cdef uint32_t s = LLAMA_DEFAULT_SEED if seed is None else <uint32_t>(int(seed) & 0xFFFFFFFF)
        if n_vocab <= 0:
            raise ValueError("n_vocab must be positive")
        return self._push(llama_sampler_init_mirostat(n_vocab, s, tau, eta, m), "mirostat")

    def add_mirostat_v2(self, seed=None, float tau=5.0, float eta=0.1):
        cdef uint32_t s = LLAMA_DEFAULT_SEED if seed is None else <uint32_t>(int(seed) & 0xFFFFFFFF)
        return self._push(llama_sampler_init_mirostat_v2(s, tau, eta), "mirostat_v2")

    def add_adaptive_p(self, float target, float decay=0.9, seed=None):
        cdef uint32_t s = LLAMA_DEFAULT_SEED if seed is None else <uint32_t>(int(seed) & 0xFFFFFFFF)
        return self._push(llama_sampler_init_adaptive_p(target, decay, s), "adaptive_p")

    # ---- filters and transforms ----------------------------------------------

    def add_top_k(self, int k):
        return self._push(llama_sampler_init_top_k(k), "top_k")

    def add_top_p(self, float p, size_t min_keep=1):
        return self._push(llama_sampler_init_top_p(p, min_keep), "top_p")

    def add_min_p(self, float p, size_t min_keep=1):
        return self._push(llama_sampler_init_min_p(p, min_keep), "min_p")

    def add_typical(self, float p, size_t min_keep=1):
        return self._push(llama_sampler_init_typical(p, min_keep), "typical")

    def add_temp(self, float t):
        return self._push(llama_sampler_init_temp(t), "temp")

    def add_temp_ext(self, float t, float delta, float exponent):
        return self._push(llama_sampler_init_temp_ext(t, delta, exponent), "temp_ext")

    def add_xtc(self, float p, float t, size_t min_keep=1, seed=None):
        cdef uint32_t s = LLAMA_DEFAULT_SEED if seed is None else <uint32_t>(int(seed) & 0xFFFFFFFF)
        return self._push(llama_sampler_init_xtc(p, t, min_keep, s), "xtc")

    def add_top_n_sigma(self, float n):
        return self._push(llama_sampler_init_top_n_sigma(n), "top_n_sigma")

    def add_penalties(self, int last_n=64, float repeat=1.0, float freq=0.0, float present=0.0, int n_vocab=0):
        if repeat <= 0:
            raise ValueError("repeat penalty must be > 0")
        return self._push(llama_sampler_init_penalties(n_vocab, last_n, repeat, freq, present), "penalties")

    def add_dry(self, Model model not None, float multiplier, float base=1.75, int allowed_length=2,
                int last_n=-1, breakers=("\n", ":", "\"", "*")):
        encoded = [b.encode() for b in breakers]
        cdef int n = len(encoded)
        cdef const char ** arr = <const char **>malloc(max(n, 1) * sizeof(char *))
        if arr == NULL:
            raise MemoryError()
        cdef int i
        try:
            for i in range(n):
                arr[i] = <const char *>encoded[i]
            return self._push(llama_sampler_init_dry(model.vocab, multiplier, base, allowed_length,
                                                     last_n, arr, n), "dry")
        finally:
            free(arr)

    def add_logit_bias(self, Model model not None, bias):
        """`bias`: {token_id: added_logit} (-inf bans a token)."""
        items = list(dict(bias).items())
        cdef int n = len(items)
        cdef llama_logit_bias * arr = <llama_logit_bias *>malloc(max(n, 1) * sizeof(llama_logit_bias))
        if arr == NULL:
            raise MemoryError()
        cdef int i
        try:
            for i in range(n):
                tok = int(items[i][0])
                model._check_token(tok)
                arr[i].token = tok
                arr[i].bias = float(items[i][1])
            return self._push(llama_sampler_init_logit_bias(model._n_vocab, n, arr), "logit_bias")
        finally:
            free(arr)

    def add_grammar(self, Model model not None, str grammar, str root="root"):
        """Constrain output to a GBNF grammar; ValueError when it does not parse."""
        cdef bytes g = grammar.encode()
        cdef bytes r = root.encode()
        cdef const char * cg = g
        cdef const char * cr = r
        cdef llama_sampler * s
        with nogil:
            s = llama_sampler_init_grammar(model.vocab, cg, cr)
        if s == NULL:
            raise ValueError("invalid grammar (see the pyllama.llama_cpp log for the parse error)")
        return self._push(s, "grammar")

    def add_grammar_lazy(self, Model model not None, str grammar, trigger_patterns=(), trigger_tokens=(),
                         str root="root"):
        """A grammar that stays inactive until a trigger: a regex matched
        from the start of the output (the grammar sees text from its first
        capture group on) or one of `trigger_tokens`."""
        pats = [p.encode() for p in trigger_patterns]
        toks = [int(t) for t in trigger_tokens]
        for t in toks:
            model._check_token(t)
        cdef int np_ = len(pats)
        cdef int nt = len(toks)
        cdef const char ** cp = <const char **>malloc(max(np_, 1) * sizeof(char *))
        cdef llama_token * ct = <llama_token *>malloc(max(nt, 1) * sizeof(llama_token))
        cdef int i
        cdef bytes g = grammar.encode()
        cdef bytes r = root.encode()
        cdef llama_sampler * s
        if cp == NULL or ct == NULL:
            free(cp)
            free(ct)
            raise MemoryError()
        try:
            for i in range(np_):
                cp[i] = <const char *>pats[i]
            for i in range(nt):
                ct[i] = toks[i]
            s = llama_sampler_init_grammar_lazy_patterns(model.vocab, g, r, cp, np_, ct, nt)
        finally:
            free(cp)
            free(ct)
        if s == NULL:
            raise ValueError("invalid grammar or trigger pattern (see the pyllama.llama_cpp log)")
        return self._push(s, "grammar_lazy")

    def add_infill(self, Model model not None):
        return self._push(llama_sampler_init_infill(model.vocab), "infill")

    # ---- use -------------------------------------------------------------------

    cdef llama_token _sample_row(self, const float * logits, int32_t n) except -1:
        """Chain over one logits row: apply, check a token was picked, accept.
        (llama_sampler_sample aborts the process when nothing is picked.)"""
        if llama_sampler_chain_n(self.chain) == 0:
            raise ValueError("the sampler chain is empty")
        self._cur.resize(n)
        cdef llama_token_data * data = self._cur.data()
        cdef llama_token_data_array cur
        cdef int32_t k
        with nogil:
            for k in range(n):
                data[k].id = k
                data[k].logit = logits[k]
                data[k].p = 0.0
            cur.data = data
            cur.size = n
            cur.selected = -1
            cur.sorted = False
            llama_sampler_apply(self.chain, &cur)
        if cur.selected < 0 or <size_t>cur.selected >= cur.size:
            raise LlamaError("the sampler chain picked no token (does it end with greedy/dist/mirostat?)")
        cdef llama_token tok = cur.data[cur.selected].id
        with nogil:
            llama_sampler_accept(self.chain, tok)
        return tok

    def sample(self, Context ctx not None, int i):
        """Apply the chain to the logits at batch index `i`, pick a token and
        accept it into the chain's state."""
        cdef float * logits
        with nogil:
            logits = llama_get_logits_ith(ctx.ptr, i)
        if logits == NULL:
            raise IndexError(f"no logits for batch index {i}")
        return self._sample_row(logits, ctx._n_vocab)

    def sample_logits(self, logits):
        """Apply the chain to a float32 logits array of your own; returns the
        picked token (accepted into the chain's state)."""
        cdef cnp.ndarray[cnp.float32_t, ndim=1] arr = np.ascontiguousarray(logits, dtype=np.float32).reshape(-1)
        if arr.shape[0] == 0:
            raise ValueError("empty logits")
        return self._sample_row(<const float *>arr.data, <int32_t>arr.shape[0])

    def accept(self, int tok):
        """Feed a token the chain did not pick (prompt tokens, forced text)."""
        if tok < 0:
            raise ValueError(f"invalid token id {tok}")
        with nogil:
            llama_sampler_accept(self.chain, tok)

    def reset(self):
        llama_sampler_reset(self.chain)

    def clone(self):
        cdef Sampler other = Sampler.__new__(Sampler)
        llama_sampler_free(other.chain)
        other.chain = llama_sampler_clone(self.chain)
        if other.chain == NULL:
            raise LlamaError("cloning the sampler failed")
        return other

    @property
    def seed(self):
        return llama_sampler_get_seed(self.chain)

    def perf(self):
        cdef llama_perf_sampler_data d = llama_perf_sampler(self.chain)
        return {"t_sample_ms": d.t_sample_ms, "n_sample": d.n_sample}
