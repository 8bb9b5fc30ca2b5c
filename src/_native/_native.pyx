# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
# distutils: language = c++
"""Hand-written bindings to llama.cpp: models, contexts, batches, samplers,
and libmtmd's multimodal projectors.

A thin mirror of llama.h in Python terms. Every pointer and return code is
checked; mistakes that llama.cpp would abort on are raised as exceptions
before the call is made. Long-running calls release the GIL.
"""

from libc.stdint cimport int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, strlen
from libc.math cimport isfinite
from libcpp cimport bool as cbool
from libcpp.string cimport string
from libcpp.vector cimport vector
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cimport numpy as cnp
import numpy as np

from includes.ggml cimport *
from includes.llama cimport *
from includes.mtmd cimport *
from includes.ggml_rpc cimport *
from includes.llama_ext cimport *
from libcpp.map cimport map as cppmap
from includes cimport shim

cnp.import_array()

# Extension types used as field types before their definition.
cdef class Projector

import json as _json
import logging as _logging
import os as _os
import threading as _threading

include "errors.pxi"
include "log.pxi"
include "metadata.pxi"
include "model.pxi"
include "batch.pxi"
include "context.pxi"
include "sampler.pxi"
include "chat.pxi"
include "bitmap.pxi"
include "chunks.pxi"
include "projector.pxi"
include "system.pxi"
include "rpc.pxi"

llama_backend_init()
_install_logger()
