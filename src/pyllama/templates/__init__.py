"""Prompts: Go TEMPLATE layers and GGUF Jinja templates in, parsed model output out.

* :func:`build_prompt` renders a conversation (Ollama-shaped messages) with
  either kind of template and returns a :class:`RenderedPrompt`.
* :meth:`RenderedPrompt.output_parser` gives a streaming parser that splits
  the answer into content, thinking and tool calls.
* :func:`model_capabilities` computes completion/tools/insert/vision/
  embedding/thinking with Ollama's rules.
"""

from pyllama.templates.capabilities import model_capabilities, required_capabilities
from pyllama.templates.gotemplate import Template, TemplateError, TemplateExecError, TemplateSyntaxError
from pyllama.templates.messages import chat_messages, generate_messages, to_openai_messages
from pyllama.templates.ollama import (
    DEFAULT_TEMPLATE,
    OllamaTemplate,
    check_template,
    parse_ollama_template,
    template_info,
)
from pyllama.templates.parsers import (
    GoOutputParser,
    JinjaOutputParser,
    OutputParser,
    ParsedDelta,
    ThinkingParser,
    ToolCallParser,
    new_call_id,
)
from pyllama.templates.prompt import RenderedPrompt, build_prompt, load_chat_templates, think_values

__all__ = [
    "DEFAULT_TEMPLATE",
    "GoOutputParser",
    "JinjaOutputParser",
    "OllamaTemplate",
    "OutputParser",
    "ParsedDelta",
    "RenderedPrompt",
    "Template",
    "TemplateError",
    "TemplateExecError",
    "TemplateSyntaxError",
    "ThinkingParser",
    "ToolCallParser",
    "build_prompt",
    "check_template",
    "chat_messages",
    "generate_messages",
    "load_chat_templates",
    "model_capabilities",
    "new_call_id",
    "parse_ollama_template",
    "required_capabilities",
    "template_info",
    "think_values",
    "to_openai_messages",
]
