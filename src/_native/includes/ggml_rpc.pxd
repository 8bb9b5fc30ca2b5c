# Declarations from ggml/include/ggml-rpc.h (the RPC back-end, GGML_RPC=ON).
from includes.ggml cimport ggml_backend_dev_t, ggml_backend_reg_t

cdef extern from "ggml-rpc.h" nogil:
    int RPC_PROTO_MAJOR_VERSION
    int RPC_PROTO_MINOR_VERSION
    int RPC_PROTO_PATCH_VERSION
    int GGML_RPC_MAX_SERVERS

    # Connects at once and aborts the process when the endpoint does not
    # answer: callers check reachability first (pyllama.rpc.wire).
    ggml_backend_reg_t ggml_backend_rpc_add_server(const char * endpoint)
    # Serves one client at a time; returns only when it cannot go on.
    void ggml_backend_rpc_start_server(const char * endpoint, const char * cache_dir,
                                       size_t n_threads, size_t n_devices, ggml_backend_dev_t * devices)

