# The RPC back-end (ggml-rpc): add a remote server's devices to this
# process, or serve this machine's devices to others. The protocol has no
# authentication; see docs/rpc.md.

_rpc_registered = {}  # endpoint -> names of the devices it added (registered once per process)


def _rpc_endpoint(str endpoint):
    """`host:port` checked here: ggml aborts the process on one it cannot parse."""
    host, sep, port = endpoint.partition(":")  # ggml-rpc splits at the first colon
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"RPC endpoint must be host:port (IPv4 or a host name) with a port in 1..65535, "
                         f"not {endpoint!r}")
    return endpoint.encode()


cdef int _require_rpc() except -1:
    if not llama_supports_rpc():
        raise LlamaError("this build has no RPC back-end (build with GGML_RPC=ON)")
    return 0


def rpc_protocol_version():
    """(major, minor, patch) of the RPC protocol this build speaks."""
    return (RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION)


def rpc_add_server(str endpoint):
    """Connect to the RPC server at ``host:port`` and register its devices
    (named RPC0, RPC1, ... in order of registration); models loaded afterwards
    use them. Returns their names. ggml-rpc aborts the process when the
    server does not answer, so check it first (``pyllama.rpc.wire.probe``)."""
    _require_rpc()
    if endpoint in _rpc_registered:
        return list(_rpc_registered[endpoint])
    if len(_rpc_registered) >= GGML_RPC_MAX_SERVERS:
        raise LlamaError(f"at most {GGML_RPC_MAX_SERVERS} RPC servers per process")
    cdef bytes bendpoint = _rpc_endpoint(endpoint)
    cdef const char * cendpoint = bendpoint
    cdef ggml_backend_reg_t reg
    with nogil:
        reg = ggml_backend_rpc_add_server(cendpoint)
    if reg == NULL:
        raise LlamaError(f"RPC server {endpoint} has no devices")
    cdef size_t i
    cdef ggml_backend_dev_t dev
    names = []
    for i in range(ggml_backend_reg_dev_count(reg)):
        dev = ggml_backend_reg_dev_get(reg, i)
        if dev == NULL:
            raise LlamaError(f"RPC server {endpoint}: device {i} is missing")
        names.append(ggml_backend_dev_name(dev).decode("utf-8", "replace"))
    ggml_backend_register(reg)
    _rpc_registered[endpoint] = tuple(names)
    return names


def rpc_start_server(str endpoint, device_names=None, int n_threads=1, cache_dir=None):
    """Serve this process's devices (by name; default: every GPU-like
    device, else the CPU) on ``host:port``, one client at a time. Blocks for
    as long as it serves; raises LlamaError when ggml-rpc gives up (the
    address cannot be bound, accept fails)."""
    _require_rpc()
    if n_threads < 1:
        raise ValueError("n_threads must be >= 1")
    cdef bytes bendpoint = _rpc_endpoint(endpoint)
    cdef vector[ggml_backend_dev_t] devs
    cdef ggml_backend_dev_t dev
    cdef size_t i
    cdef bytes bname
    for name in device_names or ():
        bname = str(name).encode()
        dev = ggml_backend_dev_by_name(bname)
        if dev == NULL:
            known = ", ".join(d["name"] for d in devices())
            raise ValueError(f"unknown device {name!r} (this machine has: {known})")
        devs.push_back(dev)
    if devs.empty():
        for i in range(ggml_backend_dev_count()):
            dev = ggml_backend_dev_get(i)
            if dev != NULL and ggml_backend_dev_get_type(dev) in (GGML_BACKEND_DEVICE_TYPE_GPU,
                                                                  GGML_BACKEND_DEVICE_TYPE_IGPU):
                devs.push_back(dev)
    if devs.empty():
        dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)
        if dev == NULL:
            raise LlamaError("no device to serve")
        devs.push_back(dev)
    cdef bytes bcache = b""
    if cache_dir is not None:
        cache_dir = _os.fspath(cache_dir)
        _os.makedirs(cache_dir, exist_ok=True)
        bcache = cache_dir.encode()
    cdef const char * ccache = <const char *>bcache if cache_dir is not None else NULL
    cdef const char * cendpoint = bendpoint
    with nogil:
        ggml_backend_rpc_start_server(cendpoint, ccache, n_threads, devs.size(), devs.data())
    raise LlamaError(f"the RPC server on {endpoint} stopped (see the messages above)")
