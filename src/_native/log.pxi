# llama.cpp / ggml log lines routed into Python `logging`.
#
# The callback runs on whatever thread logged, often inside a nogil decode,
# so the level filter is a plain C variable checked before taking the GIL:
# filtered messages cost no Python work at all.

_llama_logger = _logging.getLogger("pyllama.llama_cpp")

cdef int _log_min_level = GGML_LOG_LEVEL_ERROR
cdef int _log_last_level = GGML_LOG_LEVEL_INFO
cdef bint _log_enabled = True
_log_pending = []

cdef int _to_ggml_level(int py_level):
    if py_level <= _logging.DEBUG:
        return GGML_LOG_LEVEL_DEBUG
    if py_level <= _logging.INFO:
        return GGML_LOG_LEVEL_INFO
    if py_level <= _logging.WARNING:
        return GGML_LOG_LEVEL_WARN
    return GGML_LOG_LEVEL_ERROR


cdef int _to_py_level(int level):
    if level == GGML_LOG_LEVEL_DEBUG:
        return _logging.DEBUG
    if level == GGML_LOG_LEVEL_INFO:
        return _logging.INFO
    if level == GGML_LOG_LEVEL_WARN:
        return _logging.WARNING
    return _logging.ERROR


cdef void _emit_log(int level, const char * text) noexcept with gil:
    global _log_last_level
    try:
        if level == GGML_LOG_LEVEL_CONT:
            level = _log_last_level
        else:
            _log_last_level = level
        piece = text.decode("utf-8", "replace")
        _log_pending.append(piece)
        if piece.endswith("\n"):
            line = "".join(_log_pending).rstrip("\n")
            _log_pending.clear()
            if line:
                _llama_logger.log(_to_py_level(level), "%s", line)
    except BaseException:
        pass


cdef extern from *:
    """
    #include <string.h>
    /* The last ERROR line logged on this thread, so that a failing call can
       name llama.cpp's reason in its exception (mtmd reports most failures
       only through the log). */
    static thread_local char pyllama_last_error[512];
    static inline void pyllama_note_error(const char * text) {
        size_t n = strlen(text);
        while (n > 0 && (text[n - 1] == '\\n' || text[n - 1] == ' ')) n--;
        if (n == 0) return;
        if (n >= sizeof(pyllama_last_error)) n = sizeof(pyllama_last_error) - 1;
        memcpy(pyllama_last_error, text, n);
        pyllama_last_error[n] = 0;
    }
    static inline void pyllama_clear_error(void) { pyllama_last_error[0] = 0; }
    static inline const char * pyllama_get_error(void) { return pyllama_last_error; }
    """
    void pyllama_note_error(const char * text) nogil
    void pyllama_clear_error() nogil
    const char * pyllama_get_error() nogil


cdef str _last_error(str fallback):
    """The last llama.cpp/mtmd error line on this thread, or `fallback`."""
    cdef bytes b = pyllama_get_error()
    pyllama_clear_error()
    return b.decode("utf-8", "replace") if b else fallback


cdef void _log_callback(ggml_log_level level, const char * text, void * user_data) noexcept nogil:
    cdef int lvl = <int>level
    if not _log_enabled or text == NULL:
        return
    if lvl == GGML_LOG_LEVEL_ERROR:
        pyllama_note_error(text)
    if lvl == GGML_LOG_LEVEL_CONT:
        lvl = _log_last_level
    if lvl < _log_min_level:
        return
    _emit_log(<int>level, text)


cdef void _silent_callback(ggml_log_level level, const char * text, void * user_data) noexcept nogil:
    return


def set_log_level(level):
    """Forward llama.cpp messages at or above `level` (a `logging` level) to
    the "pyllama.llama_cpp" logger. Default: ERROR, so loading stays quiet."""
    global _log_min_level
    _log_min_level = _to_ggml_level(int(level))
    _llama_logger.setLevel(int(level))


def _shutdown_logger():
    global _log_enabled
    _log_enabled = False
    llama_log_set(_silent_callback, NULL)
    mtmd_helper_log_set(_silent_callback, NULL)


def _install_logger():
    import atexit
    env = _os.environ.get("PYLLAMA_LLAMA_LOG_LEVEL") or _os.environ.get("PYLLAMA_DEBUG") and "DEBUG"
    if env:
        level = int(env) if env.isdigit() else _logging.getLevelName(env.upper())
        set_log_level(level if isinstance(level, int) else _logging.INFO)
    llama_log_set(_log_callback, NULL)
    mtmd_helper_log_set(_log_callback, NULL)  # mtmd and clip have their own logger
    # Background threads may still log while the interpreter finalises; after
    # exit the callback must not try to take the GIL.
    atexit.register(_shutdown_logger)
