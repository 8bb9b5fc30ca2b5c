"""The built-in web chat: the static files of ``pyllama/ui`` under ``/ui/``.

The page is plain ES modules and CSS (no build step) and talks to the same
public API any client uses. Every file is sent with a strict
Content-Security-Policy, so even a rendering bug could not run a script that
came from model output: only the page's own scripts and styles load, and
images come from the page itself or from data the user attached.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.response import File, Redirect

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
UI_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
# Some systems map .js to text/plain, which browsers refuse for modules.
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png", ".svg": "image/svg+xml"}


def _ui_file(relative: str) -> Path | None:
    """The file under UI_DIR that ``relative`` names, or None (nothing outside it, no directories)."""
    root = UI_DIR.resolve()
    target = (root / (relative.lstrip("/") or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


@get(["/ui", "/ui/{file:path}"], include_in_schema=False, sync_to_thread=False, opt={"public": True})
def ui_files(request: Request[object, object, object], file: str | None = None) -> Response[object]:
    """``/ui`` becomes ``/ui/`` so the page's relative module URLs resolve under it.

    Litestar routes both to ``file=None``; the raw path tells them apart."""
    if file is None:
        if not request.scope.get("raw_path", b"").split(b"?", 1)[0].endswith(b"/"):
            return Redirect(path="/ui/", status_code=308)
        file = ""
    target = _ui_file(file)
    if target is None:
        raise NotFoundException()
    media_type = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return File(path=target, media_type=media_type, content_disposition_type="inline", headers=UI_HEADERS)
