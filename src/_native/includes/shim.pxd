# The JSON-speaking C++ helpers in shim/chat_shim.h (wrapping llama.cpp common/).
from libcpp cimport bool as cbool
from libcpp.string cimport string
from includes.llama cimport llama_model

cdef extern from "chat_shim.h":
    struct common_chat_templates:
        pass

cdef extern from "chat_shim.h" namespace "pyllama" nogil:
    common_chat_templates * chat_templates_init(const llama_model * model, const string & override_template,
                                                const string & bos_token, const string & eos_token) except +
    void chat_templates_free(common_chat_templates * tmpls)
    string chat_templates_source(const common_chat_templates * tmpls, const string & variant) except +
    string chat_templates_caps(const common_chat_templates * tmpls) except +
    cbool chat_templates_support_thinking(const common_chat_templates * tmpls) except +
    string chat_templates_apply(const common_chat_templates * tmpls, const string & inputs_json) except +
    string chat_parse(const string & text, cbool is_partial, const string & params_json) except +
    string schema_to_grammar(const string & schema_json, cbool force_gbnf) except +
