"""The built-in web chat (/ui) in a real browser: Playwright driving Debian's
chromium against a real `pyllama serve` with SmolLM2.

The page is used as a person would use it (clicks, typing, keys); what it
shows is checked against what the API says for the same request.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from ggufutil import write_tiny_llama
from inferenceutil import MODEL, PLAN_TEMPLATE, inference_server

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
Page = playwright_sync.Page
expect = playwright_sync.expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"
# Greedy SmolLM2 continues this pattern by repeating the user's text, so the
# answer is exactly the prompt: a deterministic way to make the model emit HTML.
ECHO_TEMPLATE = "A: {{ .Prompt }}\nB: {{ .Prompt }}\nA: {{ .Prompt }}\nB:"
# Counting never ends on its own: only Stop ends this answer.
COUNT_TEMPLATE = "{{ .Prompt }}"
SETTINGS = {"temperature": "0", "num_ctx": "512", "seed": "42"}


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One slot: a stopped answer that kept its slot would block every later request.
    with inference_server(module_models_dir, model_path, parallel=1) as url:
        client = ollama.Client(host=url)
        client.create("echo", from_=MODEL, template=ECHO_TEMPLATE,
                      parameters={"temperature": 0, "stop": ["\n"], "num_predict": 40, "num_ctx": 512})
        client.create("counter", from_=MODEL, template=COUNT_TEMPLATE,
                      parameters={"temperature": 0, "num_predict": 100000, "num_ctx": 512})
        client.create("planner", from_=MODEL, template=PLAN_TEMPLATE, parameters={"num_predict": 60})
        tiny = tmp_path_factory.mktemp("tiny")
        embed = client.create_blob(write_tiny_llama(tiny / "e.gguf", extra_kv={"llama.pooling_type": 1}, seed=1))
        client.create("embedder", files={"model.gguf": embed})
        seer = client.create_blob(write_tiny_llama(tiny / "v.gguf", extra_kv={"llama.vision.block_count": 2}, seed=3))
        client.create("seer", files={"model.gguf": seer})
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip("chromium is not installed; apt-get install chromium")
    with playwright_sync.sync_playwright() as pw:
        # Browser downloads are not available: drive the system's chromium. Root needs --no-sandbox.
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


class Watch:
    """What the page did that a test must see: dialogs it opened, errors it threw."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.answers: dict[str, str | None] = {}  # dialog message prefix -> answer (None dismisses)
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append((dialog.type, dialog.message))
        for prefix, answer in self.answers.items():
            if dialog.message.startswith(prefix) and answer is not None:
                dialog.accept(answer)
                return
        dialog.dismiss()


@pytest.fixture
def page(browser: Any, base: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.watch = Watch(page)  # type: ignore[attr-defined]
    yield page
    assert page.watch.errors == []  # type: ignore[attr-defined]
    context.close()


def open_ui(page: Page, base: str) -> None:
    page.goto(base + "/ui")
    assert page.url == base + "/ui/"
    expect(page.locator("#model-select option").first).to_be_attached()
    expect(page.locator("#view-chat")).to_be_visible()
    expect(page.locator("#view-models")).to_be_hidden()


def pick(page: Page, model: str, **settings: str) -> None:
    page.select_option("#model-select", model if ":" in model else model + ":latest")
    if settings:
        page.click("#settings summary")
        for name, value in settings.items():
            page.fill(f"#opt-{name}", value)
        page.click("#settings summary")


def observe_lengths(page: Page) -> None:
    """Record the text length of the newest answer on every change, to see it grow while streaming."""
    page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const bodies = document.querySelectorAll('.msg.assistant .body');
            if (bodies.length) window.__lengths.push(bodies[bodies.length - 1].textContent.length);
        }).observe(document.querySelector('#messages'), {subtree: true, childList: true, characterData: true});
    }""")


def stored_conversations(page: Page) -> list[dict[str, Any]]:
    return page.evaluate("""() => JSON.parse(localStorage.getItem('pyllama.conversations') || '[]')
        .map((id) => JSON.parse(localStorage.getItem('pyllama.conversation.' + id)))""")


def test_root_still_answers_and_ui_is_locked_down(base: str) -> None:
    assert httpx.get(base + "/").text == "Ollama is running"
    page = httpx.get(base + "/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert httpx.get(base + "/ui/app.js").headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert httpx.get(base + "/ui/missing.js").status_code == 404


def test_chat_streams_markdown_and_shows_stats(page: Page, base: str, tmp_path: Path) -> None:
    open_ui(page, base)
    names = page.locator("#model-select option").all_text_contents()
    assert {"smol:latest", "echo:latest", "seer:latest"} <= set(names) and "embedder:latest" not in names  # embedding-only: not for chat
    pick(page, MODEL, **SETTINGS)
    observe_lengths(page)
    prompt = "Write a Python function that adds two numbers."
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".stats")).to_contain_text("tokens/s", timeout=120_000)
    stats = answer.locator(".stats").inner_text()
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) > 3, lengths  # the text grew piece by piece

    # The same request through the API gives the same answer; the stats are the final record's.
    whole = httpx.post(base + "/api/chat", timeout=120, json={
        "model": MODEL, "stream": False, "messages": [{"role": "user", "content": prompt}],
        "options": {"temperature": 0, "num_ctx": 512, "seed": 42}}).json()
    [conv] = stored_conversations(page)
    assert conv["messages"][-1]["content"] == whole["message"]["content"]
    assert conv["options"] == {"temperature": 0, "num_ctx": 512, "seed": 42}
    final = conv["messages"][-1]["stats"]
    assert final["eval_count"] == whole["eval_count"] and final["prompt_eval_count"] > 10  # the first, uncached prompt
    assert stats.startswith(f"{whole['eval_count']} tokens · ")
    assert f"prompt {final['prompt_eval_count']} tokens" in stats
    rate = final["eval_count"] / (final["eval_duration"] / 1e9)
    assert f"{rate:.1f} tokens/s" in stats
    # Each fenced block of the (greedy, so fixed) answer became a code block.
    fences = whole["message"]["content"].count("```") // 2
    assert fences >= 1 and answer.locator(".code pre code").count() == fences
    assert "def " in answer.locator(".code pre code").first.inner_text()
    shot = tmp_path / "chat.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("PYLLAMA_UI_SCREENSHOT"):  # how docs/ui-chat.png is made
        page.screenshot(path=os.environ["PYLLAMA_UI_SCREENSHOT"])

    # Rename, export and delete the conversation.
    page.watch.answers["Name of this conversation"] = "Adding numbers"  # type: ignore[attr-defined]
    page.click("#rename-chat")
    expect(page.locator("#conv-list button")).to_have_text(["Adding numbers"])
    with page.expect_download() as download:
        page.click("#export-chat")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["title"] == "Adding numbers" and exported["messages"][0]["content"] == prompt
    page.watch.answers["Delete"] = ""  # type: ignore[attr-defined]
    page.click("#delete-chat")
    expect(page.locator("#conv-list button")).to_have_count(0)
    assert stored_conversations(page) == []
    expect(page.locator(".msg")).to_have_count(0)


def test_stop_aborts_and_frees_the_slot(page: Page, base: str) -> None:
    open_ui(page, base)
    pick(page, "counter")
    page.fill("#prompt", "1, 2, 3, 4, 5, 6,")
    page.click("#send")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".body")).to_contain_text("8", timeout=120_000)
    expect(page.locator("#stop")).to_be_enabled()
    page.keyboard.press("Escape")
    expect(answer.locator(".state")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_enabled()
    ps = httpx.get(base + "/api/ps").json()
    assert len(ps["models"]) == 1  # one runner (counter shares smol's weights), still loaded
    # The only slot is free again: a new request on the same model is answered.
    after = httpx.post(base + "/api/chat", timeout=60, json={
        "model": "counter", "stream": False, "messages": [{"role": "user", "content": "1, 2,"}],
        "options": {"num_predict": 3}}).json()
    assert after["done"] and after["eval_count"] == 3
    # The stopped answer is kept as it was, and the conversation goes on.
    [conv] = stored_conversations(page)
    assert conv["messages"][-1]["state"] == "stopped" and conv["messages"][-1]["content"]


def test_model_output_renders_as_text(page: Page, base: str) -> None:
    open_ui(page, base)
    pick(page, "echo")
    page.fill("#prompt", XSS)
    page.press("#prompt", "Enter")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".stats")).to_be_visible(timeout=120_000)
    expect(answer.locator(".body")).to_have_text(XSS)
    assert answer.locator("img").count() == 0 and page.locator(".msg.user img").count() == 0
    assert page.watch.dialogs == []  # type: ignore[attr-defined]

    # The renderer itself, on hostile Markdown: text stays text, only http(s)/mailto links survive.
    rendered = page.evaluate("""async () => {
        const { renderMarkdown } = await import('./markdown.js');
        const box = document.createElement('div');
        box.append(renderMarkdown([
            '<script>window.__pwned = 1</script>',
            '**<b>bold</b>** and `<i>code</i>`',
            '[click](javascript:alert(1)) [ok](https://example.com/a?b=1)',
            '```html', '<iframe src="x"></iframe>', '```',
            '- <svg onload=alert(1)>',
        ].join('\\n')));
        return {
            tags: [...box.querySelectorAll('*')].map((n) => n.tagName.toLowerCase()),
            hrefs: [...box.querySelectorAll('a')].map((a) => a.getAttribute('href')),
            code: box.querySelector('pre code').textContent,
            text: box.textContent,
        };
    }""")
    assert set(rendered["tags"]) <= {"p", "br", "strong", "code", "a", "div", "span", "button", "pre", "ul", "li"}
    assert rendered["hrefs"] == ["https://example.com/a?b=1"]
    assert rendered["code"] == '<iframe src="x"></iframe>'
    assert "<script>window.__pwned = 1</script>" in rendered["text"] and "[click](javascript:alert(1))" in rendered["text"]
    assert page.evaluate("window.__pwned") is None and page.watch.dialogs == []  # type: ignore[attr-defined]


def test_thinking_is_shown_folded(page: Page, base: str) -> None:
    open_ui(page, base)
    pick(page, MODEL)
    expect(page.locator("#think-box")).to_be_hidden()
    pick(page, "planner", **SETTINGS)
    expect(page.locator("#model-caps")).to_contain_text("thinking")
    expect(page.locator("#think")).to_be_checked()
    page.fill("#prompt", "How do I boil an egg?")
    with page.expect_request("**/api/chat") as sent:
        page.press("#prompt", "Enter")
    assert sent.value.post_data_json["think"] is True
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".stats")).to_be_visible(timeout=120_000)
    [conv] = stored_conversations(page)
    thought = conv["messages"][-1]["thinking"]
    assert thought.strip() and conv["messages"][-1]["content"].strip()
    folded = answer.locator("details.thinking")
    expect(folded).to_be_visible()
    assert folded.get_attribute("open") is None  # folded until the reader opens it
    folded.locator("summary").click()
    expect(folded.locator("div")).to_have_text(thought)


def test_images_are_sent_for_vision_models_only(page: Page, base: str, tmp_path: Path) -> None:
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    image = tmp_path / "dot.png"
    image.write_bytes(png)
    open_ui(page, base)
    pick(page, MODEL)
    expect(page.locator("#attach")).to_be_hidden()
    pick(page, "seer")
    expect(page.locator("#model-caps")).to_contain_text("vision")
    expect(page.locator("#attach")).to_be_visible()
    page.set_input_files("#file-input", str(image))
    expect(page.locator("#attachments img")).to_have_count(1)
    page.fill("#prompt", "What is this?")
    with page.expect_request("**/api/chat") as sent:
        page.press("#prompt", "Enter")
    body = sent.value.post_data_json
    assert body["model"] == "seer:latest"
    assert body["messages"][-1] == {"role": "user", "content": "What is this?", "images": [base64.b64encode(png).decode()]}
    expect(page.locator(".msg.user img")).to_have_count(1)
    # Pasting an image attaches it too.
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], 'pasted.png', {type: 'image/png'}));
        document.querySelector('#prompt').dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
    }""", base64.b64encode(png).decode())
    expect(page.locator("#attachments img")).to_have_count(1)
    # The tiny model has no tokenizer, so the server's refusal is what the answer shows.
    expect(page.locator(".msg.assistant .state")).to_contain_text("error: ", timeout=120_000)


def test_system_prompt_and_keys(page: Page, base: str) -> None:
    open_ui(page, base)
    pick(page, MODEL, **SETTINGS)
    page.click("#settings summary")
    page.fill("#system-prompt", "You are terse.")
    page.click("#settings summary")
    page.fill("#prompt", "Hi")
    with page.expect_request("**/api/chat") as sent:
        page.focus("#prompt")
        page.keyboard.press("Enter")
    messages = sent.value.post_data_json["messages"]
    assert messages == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    expect(page.locator(".msg.assistant .stats")).to_be_visible(timeout=120_000)
    # Shift+Enter is a new line, not a send.
    page.focus("#prompt")
    page.keyboard.type("one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("two")
    assert page.input_value("#prompt") == "one\ntwo"
    assert page.locator(".msg.user").count() == 1
    # A second conversation, then back to the first: its messages and system prompt return.
    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)
    assert page.input_value("#system-prompt") == ""
    pick(page, MODEL, **SETTINGS)
    page.fill("#prompt", "Bye")
    page.press("#prompt", "Enter")
    expect(page.locator(".msg.assistant .stats")).to_be_visible(timeout=120_000)
    expect(page.locator("#conv-list button")).to_have_text(["Bye", "Hi"])
    page.click("#conv-list button >> text=Hi")
    expect(page.locator(".msg.user")).to_have_text(["Hi"])
    assert page.input_value("#system-prompt") == "You are terse."
    assert page.input_value("#opt-seed") == "42"


def test_models_view_create_unload_delete(page: Page, base: str) -> None:
    open_ui(page, base)
    page.click("#tab-models")
    expect(page.locator("#view-chat")).to_be_hidden()
    row = page.locator(f'#model-table tr[data-model="{MODEL}:latest"]')
    expect(row).to_contain_text("llama")
    expect(row).to_contain_text("completion")

    page.fill("#create-name", "terse")
    page.fill("#create-modelfile", "FROM ./weights.gguf\n")
    page.click("#create-go")
    expect(page.locator("#create-status")).to_contain_text("FROM a local file")
    page.fill("#create-modelfile", f'FROM {MODEL}\nSYSTEM """Be terse."""\nPARAMETER temperature 0.3\nPARAMETER stop "<|im_end|>"\n')
    page.click("#create-go")
    expect(page.locator("#create-status")).to_have_text("success", timeout=60_000)
    expect(page.locator('#model-table tr[data-model="terse:latest"]')).to_be_visible()
    shown = httpx.post(base + "/api/show", json={"model": "terse"}).json()
    assert shown["system"] == "Be terse."
    assert "temperature" in shown["parameters"] and "0.3" in shown["parameters"]
    assert "terse:latest" in page.locator("#model-select option").all_text_contents()

    # Load it, see it in the ps column, unload it from the page.
    httpx.post(base + "/api/generate", json={"model": "terse", "keep_alive": "5m"}, timeout=120)
    page.click("#refresh-models")
    terse = page.locator('#model-table tr[data-model="terse:latest"]')
    expect(terse).to_contain_text("loaded")
    terse.get_by_role("button", name="Unload").click()
    expect(terse).not_to_contain_text("loaded")
    assert "terse:latest" not in [m["name"] for m in httpx.get(base + "/api/ps").json()["models"]]

    page.watch.answers["Delete terse"] = ""  # type: ignore[attr-defined]
    terse.get_by_role("button", name="Delete").click()
    expect(terse).to_have_count(0)
    assert "terse:latest" not in [m["name"] for m in httpx.get(base + "/api/tags").json()["models"]]


def test_pull_shows_progress_to_100(page: Page, base: str, registry: str, model_path: Path) -> None:
    client = ollama.Client(host=base)
    name = f"{registry}/ui/smol:v1"
    client.create(name, from_=MODEL)
    list(client.push(name, insecure=True, stream=True))
    client.delete(name)
    open_ui(page, base)
    page.click("#tab-models")
    page.evaluate("""() => {
        window.__progress = [];
        const bar = document.querySelector('#pull-progress');
        new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('value'))))
            .observe(bar, {attributes: true, attributeFilter: ['value']});
    }""")
    page.fill("#pull-name", name)
    page.check("#pull-insecure")
    page.click("#pull-go")
    expect(page.locator("#pull-status")).to_have_text("success", timeout=120_000)
    progress = page.evaluate("window.__progress")
    assert progress[-1] == 100 and progress == sorted(progress), progress
    assert page.locator("#pull-progress").get_attribute("value") == "100"
    expect(page.locator(f'#model-table tr[data-model="{name}"]')).to_be_visible()


def test_api_key_is_asked_once_and_sent(page: Page, base: str) -> None:
    # A server with keys on answers 401 without the right bearer token.
    seen: list[str | None] = []

    def gate(route: Any) -> None:
        auth = route.request.headers.get("authorization")
        seen.append(auth)
        if auth == "Bearer sekrit":
            route.continue_()
        else:
            route.fulfill(status=401, content_type="application/json", body='{"error": "unauthorized"}')

    page.route("**/api/**", gate)
    page.goto(base + "/ui/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.fill("#key-input", "wrong")
    page.press("#key-input", "Enter")
    expect(page.locator("#key-message")).to_have_text("That API key was refused.")
    page.fill("#key-input", "sekrit")
    page.click("#key-ok")
    expect(dialog).to_be_hidden()
    expect(page.locator("#model-select option", has_text="smol:latest")).to_be_attached()
    assert page.evaluate("localStorage.getItem('pyllama.apiKey')") == "sekrit"
    seen.clear()
    page.reload()
    expect(page.locator("#model-select option", has_text="smol:latest")).to_be_attached()
    expect(dialog).to_be_hidden()
    assert seen and all(a == "Bearer sekrit" for a in seen)


def test_narrow_dark_layout(browser: Any, base: str) -> None:
    context = browser.new_context(viewport={"width": 380, "height": 740}, color_scheme="dark")
    page = context.new_page()
    open_ui(page, base)
    layout = page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        bg: getComputedStyle(document.body).backgroundColor,
        asideBottom: document.querySelector('.conversations').getBoundingClientRect().bottom,
        threadTop: document.querySelector('.thread').getBoundingClientRect().top,
    })""")
    assert layout["scroll"] <= 380  # nothing wider than the window
    assert layout["asideBottom"] <= layout["threadTop"]  # one column: the list above the thread
    r, g, b = (int(x) for x in layout["bg"][layout["bg"].index("(") + 1:-1].split(",")[:3])
    assert r + g + b < 150  # dark
    context.close()
