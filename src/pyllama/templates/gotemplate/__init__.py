"""Go ``text/template`` implemented in Python, for Ollama TEMPLATE layers."""

from pyllama.templates.gotemplate.errors import TemplateError, TemplateExecError, TemplateSyntaxError
from pyllama.templates.gotemplate.template import Template
from pyllama.templates.gotemplate.values import NO_VALUE, GoStruct, OrderedMap, json_marshal

__all__ = [
    "NO_VALUE",
    "GoStruct",
    "OrderedMap",
    "Template",
    "TemplateError",
    "TemplateExecError",
    "TemplateSyntaxError",
    "json_marshal",
]
