# GGUF key/values as Python values, read with ggml's own gguf reader.

cdef object _gguf_scalar(const gguf_context * g, int64_t i, gguf_type t):
    if t == GGUF_TYPE_UINT8:
        return gguf_get_val_u8(g, i)
    if t == GGUF_TYPE_INT8:
        return gguf_get_val_i8(g, i)
    if t == GGUF_TYPE_UINT16:
        return gguf_get_val_u16(g, i)
    if t == GGUF_TYPE_INT16:
        return gguf_get_val_i16(g, i)
    if t == GGUF_TYPE_UINT32:
        return gguf_get_val_u32(g, i)
    if t == GGUF_TYPE_INT32:
        return gguf_get_val_i32(g, i)
    if t == GGUF_TYPE_FLOAT32:
        return gguf_get_val_f32(g, i)
    if t == GGUF_TYPE_BOOL:
        return bool(gguf_get_val_bool(g, i))
    if t == GGUF_TYPE_STRING:
        return gguf_get_val_str(g, i).decode("utf-8", "replace")
    if t == GGUF_TYPE_UINT64:
        return gguf_get_val_u64(g, i)
    if t == GGUF_TYPE_INT64:
        return gguf_get_val_i64(g, i)
    if t == GGUF_TYPE_FLOAT64:
        return gguf_get_val_f64(g, i)
    return None


_GGUF_ARRAY_DTYPES = {
    GGUF_TYPE_UINT8: np.uint8, GGUF_TYPE_INT8: np.int8,
    GGUF_TYPE_UINT16: np.uint16, GGUF_TYPE_INT16: np.int16,
    GGUF_TYPE_UINT32: np.uint32, GGUF_TYPE_INT32: np.int32,
    GGUF_TYPE_FLOAT32: np.float32, GGUF_TYPE_BOOL: np.bool_,
    GGUF_TYPE_UINT64: np.uint64, GGUF_TYPE_INT64: np.int64,
    GGUF_TYPE_FLOAT64: np.float64,
}


cdef object _gguf_array(const gguf_context * g, int64_t i):
    cdef gguf_type at = gguf_get_arr_type(g, i)
    cdef size_t n = gguf_get_arr_n(g, i)
    cdef size_t k
    cdef const void * data
    if at == GGUF_TYPE_STRING:
        return [gguf_get_arr_str(g, i, k).decode("utf-8", "replace") for k in range(n)]
    dtype = _GGUF_ARRAY_DTYPES.get(at)
    if dtype is None:
        # Nested arrays: ggml's reader keeps no element access for them.
        return None
    if n == 0:
        return []
    data = gguf_get_arr_data(g, i)
    if data == NULL:
        return None
    itemsize = np.dtype(dtype).itemsize
    raw = PyBytes_FromStringAndSize(<const char *>data, n * itemsize)
    return np.frombuffer(raw, dtype=dtype).tolist()


def read_gguf_metadata(path):
    """Every key/value of a GGUF file's header, as Python values.

    Reads only the header (no tensor data). Raises ModelLoadError when the
    file is not a valid GGUF.
    """
    path = _os.fspath(path)
    if not _os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    cdef bytes bpath = path.encode()
    cdef const char * cpath = bpath
    cdef gguf_init_params params
    params.no_alloc = True
    params.ctx = NULL
    cdef gguf_context * g
    with nogil:
        g = gguf_init_from_file(cpath, params)
    if g == NULL:
        raise ModelLoadError(f"not a valid GGUF file: {path}")
    cdef int64_t i
    cdef gguf_type t
    out = {}
    try:
        for i in range(gguf_get_n_kv(g)):
            key = gguf_get_key(g, i).decode("utf-8", "replace")
            t = gguf_get_kv_type(g, i)
            if t == GGUF_TYPE_ARRAY:
                out[key] = _gguf_array(g, i)
            else:
                out[key] = _gguf_scalar(g, i, t)
    finally:
        gguf_free(g)
    return out
