"""Image and audio file paths in a prompt, attached as `ollama run` attaches them.

For a model with the ``vision`` (or ``audio``) capability, every path in
the prompt that names an existing image or audio file is read, sent as
base64 in ``images`` and taken out of the prompt text; the CLI says so on
stderr. Paths may be absolute, ``./`` or ``~/`` relative, quoted, and
spaces may be escaped with a backslash. A path that is not a file stays
in the prompt as text.
"""

from __future__ import annotations

import base64
import os
import re
import sys

MEDIA_CAPABILITIES = ("vision", "audio")
MAX_BYTES = 100 * 1024 * 1024
_AUDIO = ("wav", "mp3", "flac")
_START = r"(?:[a-zA-Z]:)?(?:~/|\./|\.\./|/|\\)"
_EXT = r"\.(?:jpe?g|png|webp|gif|bmp|wav|mp3|flac)"
# A quoted path may hold spaces; a bare one only as "\ ".
_PATH = re.compile(rf"'({_START}[^']+?{_EXT})'|\"({_START}[^\"]+?{_EXT})\"|({_START}(?:\\ |[^\s'\"])+?{_EXT})\b",
                   re.IGNORECASE)


def is_multimodal(capabilities: list[str]) -> bool:
    return any(cap in capabilities for cap in MEDIA_CAPABILITIES)


def extract_media(prompt: str) -> tuple[str, list[str]]:
    """The prompt without the media paths it names, and the files as base64 (in order).

    A file that cannot be read or is too large is an error (OSError / ValueError)."""
    images: list[str] = []
    for match in list(_PATH.finditer(prompt)):
        raw = next(g for g in match.groups() if g)
        path = os.path.expanduser(raw.replace("\\ ", " "))
        if not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise ValueError(f"file too large: {path} ({size} bytes; the limit is {MAX_BYTES})")
        with open(path, "rb") as f:
            images.append(base64.b64encode(f.read()).decode("ascii"))
        kind = "audio" if raw.lower().endswith(_AUDIO) else "image"
        print(f"Added {kind} '{path}'", file=sys.stderr)
        prompt = prompt.replace(match.group(0), "")
    return prompt.strip(), images
