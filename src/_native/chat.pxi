# Chat templates through llama.cpp common's Jinja engine: rendering
# (messages, tools, generation prompt, thinking) and parsing model output
# back into content / reasoning / tool calls. Wrapped, not rewritten.

cdef class ChatTemplates:
    """The model's chat template(s), or `template` text overriding them."""
    cdef shim.common_chat_templates * ptr
    cdef readonly Model model

    def __cinit__(self, Model model not None, template=None, bos_token=None, eos_token=None):
        self.ptr = NULL
        self.model = model
        cdef string override = (template or "").encode()
        cdef string bos = (bos_token or "").encode()
        cdef string eos = (eos_token or "").encode()
        try:
            with nogil:
                self.ptr = shim.chat_templates_init(model.ptr, override, bos, eos)
        except Exception as exc:
            raise ValueError(f"invalid chat template: {exc}") from None

    def __dealloc__(self):
        if self.ptr != NULL:
            shim.chat_templates_free(self.ptr)
            self.ptr = NULL

    def source(self, variant=None):
        cdef string v = (variant or "").encode()
        return shim.chat_templates_source(self.ptr, v).decode("utf-8", "replace")

    @property
    def caps(self):
        """Capabilities detected in the template (tools, system role, ...)."""
        return _json.loads(shim.chat_templates_caps(self.ptr).decode())

    @property
    def supports_thinking(self):
        return bool(shim.chat_templates_support_thinking(self.ptr))

    def apply(self, messages, *, tools=None, tool_choice="auto", bint add_generation_prompt=True,
              bint enable_thinking=True, json_schema=None, grammar=None, bint parallel_tool_calls=False,
              str reasoning_format="auto", chat_template_kwargs=None):
        """Render OpenAI-style messages (and tools) into a prompt.

        Returns a dict with "prompt" and what generation needs to honour the
        template: grammar (+ lazy triggers), preserved tokens, extra stop
        strings, and the parser state for parse_output().
        """
        if isinstance(json_schema, (dict, list, bool)):
            json_schema = _json.dumps(json_schema)
        inputs = {
            "messages": list(messages),
            "tools": list(tools) if tools else None,
            "tool_choice": tool_choice,
            "add_generation_prompt": add_generation_prompt,
            "enable_thinking": enable_thinking,
            "json_schema": json_schema,
            "grammar": grammar,
            "parallel_tool_calls": parallel_tool_calls,
            "reasoning_format": reasoning_format,
            "chat_template_kwargs": chat_template_kwargs,
        }
        cdef string text = _json.dumps(inputs, ensure_ascii=False).encode()
        cdef string out
        try:
            with nogil:
                out = shim.chat_templates_apply(self.ptr, text)
        except Exception as exc:
            raise ValueError(f"chat template rendering failed: {exc}") from None
        return _json.loads(out.decode("utf-8", "replace"))


def parse_chat_output(text, chat_params, *, bint partial=False, str reasoning_format="auto",
                      bint parse_tool_calls=True):
    """Split generated text into content, reasoning_content and tool_calls,
    using the parser state that ChatTemplates.apply returned."""
    params = {
        "format": chat_params.get("format", 0),
        "generation_prompt": chat_params.get("generation_prompt", ""),
        "parser": chat_params.get("parser", ""),
        "reasoning_format": reasoning_format,
        "parse_tool_calls": parse_tool_calls,
    }
    cdef string ctext = text.encode("utf-8")
    cdef string cparams = _json.dumps(params).encode()
    cdef string out
    try:
        with nogil:
            out = shim.chat_parse(ctext, partial, cparams)
    except Exception as exc:
        raise ValueError(f"parsing model output failed: {exc}") from None
    return _json.loads(out.decode("utf-8", "replace"))


def json_schema_to_grammar(schema, bint force_gbnf=False):
    """A JSON schema (str or Python object) -> GBNF grammar with root `root`."""
    if not isinstance(schema, (str, bytes)):
        schema = _json.dumps(schema)
    cdef string cschema = schema.encode() if isinstance(schema, str) else schema
    cdef string out
    try:
        with nogil:
            out = shim.schema_to_grammar(cschema, force_gbnf)
    except Exception as exc:
        raise ValueError(f"unsupported JSON schema: {exc}") from None
    return out.decode("utf-8")
