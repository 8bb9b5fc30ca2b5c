"""Response, message and tool-call identifiers, in the forms each API family gives them.

``chatcmpl-123`` (OpenAI chat, as Ollama: a number below 999), ``resp_123456``
(Responses), ``msg_`` + 24 hex digits (Anthropic), ``call_`` + 8 of [a-z0-9]
(tool calls). Not secrets, but drawn from ``secrets`` so they never repeat
in lockstep with a seeded ``random``.
"""

from __future__ import annotations

import secrets
import string
from typing import Literal

_ALNUM = string.ascii_lowercase + string.digits


def new_id(prefix: str, form: Literal["number", "hex", "alnum"], size: int, sep: str = "_") -> str:
    """``prefix`` + ``sep`` + a number below ``size``, or ``size`` hex digits / [a-z0-9] characters."""
    if form == "number":
        tail = str(secrets.randbelow(size))
    elif form == "hex":
        tail = secrets.token_hex((size + 1) // 2)[:size]
    else:
        tail = "".join(secrets.choice(_ALNUM) for _ in range(size))
    return f"{prefix}{sep}{tail}"
