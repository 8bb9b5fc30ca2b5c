# Process-wide facts: build features, devices, quantization.

_DEVICE_TYPES = {
    GGML_BACKEND_DEVICE_TYPE_CPU: "cpu", GGML_BACKEND_DEVICE_TYPE_GPU: "gpu",
    GGML_BACKEND_DEVICE_TYPE_IGPU: "igpu", GGML_BACKEND_DEVICE_TYPE_ACCEL: "accel",
    GGML_BACKEND_DEVICE_TYPE_META: "meta",
}


def system_info():
    """llama.cpp's feature line (SIMD flags, backends)."""
    return llama_print_system_info().decode("utf-8", "replace")


def devices():
    """Every ggml backend device: name, description, type, free/total bytes."""
    cdef size_t i
    cdef size_t mfree, mtotal
    cdef ggml_backend_dev_t dev
    out = []
    for i in range(ggml_backend_dev_count()):
        dev = ggml_backend_dev_get(i)
        if dev == NULL:
            continue
        mfree = 0
        mtotal = 0
        ggml_backend_dev_memory(dev, &mfree, &mtotal)
        out.append({
            "name": ggml_backend_dev_name(dev).decode("utf-8", "replace"),
            "description": ggml_backend_dev_description(dev).decode("utf-8", "replace"),
            "type": _DEVICE_TYPES.get(ggml_backend_dev_get_type(dev), "unknown"),
            "memory_free": mfree,
            "memory_total": mtotal,
        })
    return out


def supports_gpu_offload():
    return bool(llama_supports_gpu_offload())


def supports_mmap():
    return bool(llama_supports_mmap())


def supports_rpc():
    return bool(llama_supports_rpc())


def max_devices():
    return llama_max_devices()


def max_parallel_sequences():
    return llama_max_parallel_sequences()


def time_us():
    return llama_time_us()


# llama_ftype values by the names Ollama and llama-quantize use.
QUANT_TYPES = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
    "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
    "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "IQ2_XXS": 19, "IQ2_XS": 20, "Q2_K_S": 21,
    "IQ3_XS": 22, "IQ3_XXS": 23, "IQ1_S": 24, "IQ4_NL": 25, "IQ3_S": 26, "IQ3_M": 27,
    "IQ2_S": 28, "IQ2_M": 29, "IQ4_XS": 30, "IQ1_M": 31, "BF16": 32, "TQ1_0": 36, "TQ2_0": 37,
}


def model_quantize(input_path, output_path, str ftype, int n_threads=0, bint allow_requantize=False):
    """Quantize a GGUF to `ftype` (e.g. "q4_K_M", "Q8_0"; case-insensitive)."""
    key = ftype.upper()
    if key not in QUANT_TYPES:
        raise ValueError(f"unsupported quantization type {ftype!r}; one of {', '.join(QUANT_TYPES)}")
    input_path = _os.fspath(input_path)
    output_path = _os.fspath(output_path)
    if not _os.path.isfile(input_path):
        raise FileNotFoundError(f"no such file: {input_path}")
    # ggml aborts on files that are not GGUF, so read the header first.
    read_gguf_metadata(input_path)
    cdef llama_model_quantize_params p = llama_model_quantize_default_params()
    p.nthread = n_threads
    p.ftype = <llama_ftype>QUANT_TYPES[key]
    p.allow_requantize = allow_requantize
    cdef bytes bi = input_path.encode()
    cdef bytes bo = output_path.encode()
    cdef const char * ci = bi
    cdef const char * co = bo
    cdef uint32_t rc
    with nogil:
        rc = llama_model_quantize(ci, co, &p)
    if rc != 0:
        raise LlamaError(f"quantizing {input_path} to {key} failed")
