# Declarations from llama.cpp's src/llama-ext.h (a C++ staging header): how
# much memory a context holds per buffer type, for per-device accounting.
from libcpp.map cimport map as cppmap
from includes.ggml cimport ggml_backend_buffer_type_t
from includes.llama cimport llama_context

cdef extern from "llama-ext.h" nogil:
    cdef cppclass llama_memory_breakdown_data:
        size_t model
        size_t context
        size_t compute

    cppmap[ggml_backend_buffer_type_t, llama_memory_breakdown_data] llama_get_memory_breakdown(
        const llama_context * ctx) except +
