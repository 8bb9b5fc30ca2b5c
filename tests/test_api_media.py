"""Images on every API: a model created from SmolLM2 plus the tiny random-weight
projector answers image requests from /api/generate, /api/chat, /v1/chat/completions,
/v1/messages and /v1/responses (and the ollama, openai and anthropic clients); the
answer is the low-level binding's for the same chunks; the image changes the output;
a follow-up turn reuses the cached image; a text-only model and bad media are 400s
in each family's envelope; `pyllama run` attaches image paths from the prompt."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from ggufutil import write_tiny_llama
from inferenceutil import MODEL, create_with_cli, post
from lorautil import assert_same_greedy
from mediautil import IMAGE_TOKENS, picture, reference_greedy, wav_bytes
from pyllama import _native
from pyllama.store.modelfile import sha256_file
from serverutil import start_server

SEEING = "seeing"
NUM_CTX = 1024  # Ollama counts an image as 768 tokens when fitting messages: 512 would drop images
N = 10
GREEDY = {"temperature": 0, "num_predict": N}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + b64(data)


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path, mmproj_path: Path) -> Iterator[str]:
    """SmolLM2 as ``smol`` (text only) and with the projector as ``seeing`` (greedy by default)."""
    env = {"PYLLAMA_MODELS": str(module_models_dir), "PYLLAMA_NUM_THREADS": "1", "PYLLAMA_NUM_PARALLEL": "2",
           "PYLLAMA_CONTEXT_LENGTH": str(NUM_CTX), "PYLLAMA_MAX_LOADED_MODELS": "3"}
    with start_server(env) as url:
        client = ollama.Client(host=url)
        weights = client.create_blob(model_path)
        client.create(MODEL, files={"model.gguf": weights})
        client.create(SEEING, files={"model.gguf": weights, "mmproj.gguf": client.create_blob(mmproj_path)},
                      parameters={"temperature": 0, "num_predict": N})
        yield url


def generate(base: str, model: str, prompt: str, images: list[bytes], **extra: Any) -> httpx.Response:
    return post(base, "/api/generate", {"model": model, "prompt": prompt, "images": [b64(i) for i in images],
                                        "stream": False, "options": GREEDY, **extra})


def test_show_reports_the_projector(base: str) -> None:
    seeing = post(base, "/api/show", {"model": SEEING}).json()
    assert "vision" in seeing["capabilities"] and "audio" not in seeing["capabilities"]
    assert seeing["projector_info"]["clip.has_vision_encoder"] is True
    assert seeing["projector_info"]["clip.vision.image_size"] == 32
    plain = post(base, "/api/show", {"model": MODEL}).json()
    assert "vision" not in plain["capabilities"] and "projector_info" not in plain


def test_generate_matches_the_binding(base: str, model_path: Path, mmproj_path: Path) -> None:
    image = picture(11)
    prompt = "Describe [img] briefly:"  # Ollama's placeholder: the image goes there, not in front
    resp = generate(base, SEEING, prompt, [image], template="{{ .Prompt }}")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    model = _native.Model(model_path)
    projector = _native.Projector(mmproj_path, model, n_threads=1)
    want, rows, n_prompt = reference_greedy(model, projector, prompt.replace("[img]", projector.marker), [image], N,
                                            n_ctx=NUM_CTX * 2, n_seq_max=2)
    assert out["prompt_eval_count"] == n_prompt  # image tokens counted
    got = out["context"][n_prompt - IMAGE_TOKENS:]
    assert_same_greedy(got, want, rows)


def test_the_image_changes_the_answer(base: str, client: ollama.Client) -> None:
    def ask(seed: int) -> str:
        return client.generate(model=SEEING, prompt="What is in the picture?", images=[picture(seed)],
                               options=GREEDY).response

    first, other, again = ask(12), ask(13), ask(12)
    assert first == again and first != other


@pytest.fixture(scope="module")
def client(base: str) -> ollama.Client:
    return ollama.Client(host=base, timeout=120)


def test_chat_follow_up_reuses_the_image(base: str, client: ollama.Client, model_path: Path) -> None:
    turn = {"role": "user", "content": "What is this?", "images": [picture(14)]}
    first = client.chat(model=SEEING, messages=[turn], options=GREEDY)
    assert first.prompt_eval_count is not None and first.prompt_eval_count > IMAGE_TOKENS
    follow = [turn, {"role": "assistant", "content": first.message.content}, {"role": "user", "content": "Sure?"}]
    second = client.chat(model=SEEING, messages=follow, options=GREEDY)
    rendered = post(base, "/api/chat", {"model": SEEING, "messages": [
        {**turn, "images": [b64(picture(14))]}, *follow[1:]], "_debug_render_only": True}).json()
    full = len(_native.Model(model_path, vocab_only=True).tokenize(
        rendered["_debug_info"]["rendered_template"].replace("[img-0]", ""), parse_special=True)) + IMAGE_TOKENS
    # only what follows the first answer is new: the image and everything before it came from the cache
    assert second.prompt_eval_count is not None and second.prompt_eval_count < full - IMAGE_TOKENS - 5


def test_ollama_client_sends_image_files(base: str, client: ollama.Client, tmp_path: Path) -> None:
    path = tmp_path / "pic.png"
    path.write_bytes(picture(15))
    by_path = client.chat(model=SEEING, messages=[{"role": "user", "content": "Look.", "images": [path]}],
                          options=GREEDY)
    by_bytes = client.chat(model=SEEING, messages=[{"role": "user", "content": "Look.", "images": [picture(15)]}],
                           options=GREEDY)
    assert by_path.message.content and by_path.message.content == by_bytes.message.content


def test_openai_client_image_url(base: str, client: ollama.Client) -> None:
    oai = openai.OpenAI(base_url=base + "/v1", api_key="x", timeout=120, max_retries=0)
    content = [{"type": "image_url", "image_url": {"url": data_url(picture(16))}},
               {"type": "text", "text": "What is this?"}]
    out = oai.chat.completions.create(model=SEEING, messages=[{"role": "user", "content": content}],  # type: ignore
                                      max_tokens=N, temperature=0)
    native = client.chat(model=SEEING, options=GREEDY, messages=[
        {"role": "user", "content": "", "images": [picture(16)]}, {"role": "user", "content": "What is this?"}])
    assert out.choices[0].message.content == native.message.content
    assert out.usage is not None and out.usage.prompt_tokens > IMAGE_TOKENS


def test_anthropic_client_base64_image(base: str, client: ollama.Client) -> None:
    sdk = anthropic.Anthropic(base_url=base, api_key="x", max_retries=0, timeout=120)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(picture(17))}}
    out = sdk.messages.create(model=SEEING, max_tokens=N, extra_body={"temperature": 0}, messages=[
        {"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}])  # type: ignore[list-item]
    native = client.chat(model=SEEING, options=GREEDY, messages=[
        {"role": "user", "content": "What is this?", "images": [picture(17)]}])
    assert out.content[0].text == native.message.content  # type: ignore[union-attr]
    assert out.usage.input_tokens > IMAGE_TOKENS


def test_responses_input_image(base: str) -> None:
    parts = [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": data_url(picture(18))}]
    resp = post(base, "/v1/responses", {"model": SEEING, "max_output_tokens": N, "temperature": 0,
                                        "input": [{"role": "user", "content": parts}]})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["status"] in ("completed", "incomplete") and out["usage"]["input_tokens"] > IMAGE_TOKENS
    other = post(base, "/v1/responses", {"model": SEEING, "max_output_tokens": N, "temperature": 0, "input": [
        {"role": "user", "content": [parts[0], {"type": "input_image", "image_url": data_url(picture(19))}]}]})
    assert other.json()["output"] != out["output"]


def test_projector_is_part_of_the_runner(base: str, client: ollama.Client) -> None:
    """Same weights with and without a projector: two runners, the text one never sees images."""
    client.generate(model=MODEL, prompt="hi", options=GREEDY)
    client.generate(model=SEEING, prompt="hi", images=[picture(1)], options=GREEDY)
    names = {m.model for m in client.ps().models}
    assert {MODEL, SEEING} <= {n.split(":")[0] for n in names if n}


def test_modelfile_with_a_second_from(base: str, model_path: Path, mmproj_path: Path, tmp_path: Path) -> None:
    (tmp_path / "mmproj.gguf").write_bytes(mmproj_path.read_bytes())
    (tmp_path / "Modelfile").write_text(f"FROM {model_path}\nFROM ./mmproj.gguf\nPARAMETER temperature 0\n")
    create_with_cli(base, "eyes", tmp_path)
    shown = post(base, "/api/show", {"model": "eyes"}).json()
    assert "vision" in shown["capabilities"] and "projector_info" in shown
    a = generate(base, "eyes", "What is it?", [picture(2)]).json()
    b = generate(base, SEEING, "What is it?", [picture(2)]).json()
    assert a["response"] == b["response"] and a["prompt_eval_count"] > IMAGE_TOKENS


def test_pulled_manifest_with_a_projector_layer(base: str, module_models_dir: Path, model_path: Path,
                                               mmproj_path: Path) -> None:
    """A manifest as a registry serves a vision model: model + projector layers."""
    blobs = module_models_dir / "blobs"
    layers = []
    for media, path in (("model", model_path), ("projector", mmproj_path)):
        digest = sha256_file(path)
        target = blobs / digest.replace(":", "-")
        if not target.exists():
            target.write_bytes(path.read_bytes())
        layers.append({"mediaType": f"application/vnd.ollama.image.{media}", "digest": digest,
                       "size": path.stat().st_size})
    config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    (blobs / config_digest.replace(":", "-")).write_bytes(config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest,
                           "size": len(config)}, "layers": layers}
    path = module_models_dir / "manifests/registry.ollama.ai/library/pulled-vision/latest"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    shown = post(base, "/api/show", {"model": "pulled-vision"}).json()
    assert "vision" in shown["capabilities"] and shown["projector_info"]["clip.projector_type"] == "mlp"
    a = generate(base, "pulled-vision", "What is it?", [picture(3)]).json()
    b = generate(base, SEEING, "What is it?", [picture(3)]).json()
    assert a["response"] == b["response"]


def test_a_broken_projector_fails_the_load_clearly(base: str, client: ollama.Client, model_path: Path,
                                                  tmp_path: Path) -> None:
    fake = write_tiny_llama(tmp_path / "mmproj.gguf", arch="clip", seed=5)  # clip keys missing
    client.create("broken-eyes", files={"model.gguf": client.create_blob(model_path),
                                        "mmproj.gguf": client.create_blob(fake)})
    resp = generate(base, "broken-eyes", "What is it?", [picture(1)])
    assert resp.status_code == 500 and "unable to load projector" in resp.json()["error"], resp.text
    assert generate(base, SEEING, "What is it?", [picture(1)]).status_code == 200


# -- errors, in each family's envelope ------------------------------------------------------

BAD = [b"", picture(20)[:45], b"GIF87a garbage", b"\x00" * 100]


def _openai_error(resp: httpx.Response, words: str) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and words in error["message"], error


def _anthropic_error(resp: httpx.Response, words: str) -> None:
    assert resp.status_code == 400, resp.text
    out = resp.json()
    assert out["type"] == "error" and out["error"]["type"] == "invalid_request_error"
    assert words in out["error"]["message"], out


@pytest.mark.parametrize("data", BAD)
def test_bad_media_is_a_400_everywhere(base: str, data: bytes) -> None:
    words = "invalid image input"
    resp = generate(base, SEEING, "look", [data])
    assert resp.status_code == 400 and words in resp.json()["error"], resp.text
    resp = post(base, "/api/chat", {"model": SEEING, "stream": False,
                                    "messages": [{"role": "user", "content": "x", "images": [b64(data)]}]})
    assert resp.status_code == 400 and words in resp.json()["error"], resp.text
    content = [{"type": "image_url", "image_url": {"url": data_url(data)}}]
    _openai_error(post(base, "/v1/chat/completions", {"model": SEEING, "messages": [
        {"role": "user", "content": content}]}), words)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(data)}}
    _anthropic_error(post(base, "/v1/messages", {"model": SEEING, "max_tokens": 4, "messages": [
        {"role": "user", "content": [image, {"type": "text", "text": "x"}]}]}), words)
    # still serving
    assert generate(base, SEEING, "look", [picture(1)]).status_code == 200


def test_audio_to_a_vision_only_projector(base: str) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": b64(wav_bytes()), "format": "wav"}}
    resp = post(base, "/v1/chat/completions", {"model": SEEING, "messages": [{"role": "user", "content": [audio]}]})
    _openai_error(resp, "invalid image input")
    assert "audio" in resp.json()["error"]["message"]


def test_text_only_model_refuses_images_in_every_family(base: str) -> None:
    words = '"smol" does not support vision'
    resp = generate(base, MODEL, "look", [picture(1)])
    assert resp.status_code == 400 and words in resp.json()["error"]
    content = [{"type": "image_url", "image_url": {"url": data_url(picture(1))}}]
    _openai_error(post(base, "/v1/chat/completions", {"model": MODEL, "messages": [
        {"role": "user", "content": content}]}), words)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(picture(1))}}
    _anthropic_error(post(base, "/v1/messages", {"model": MODEL, "max_tokens": 4, "messages": [
        {"role": "user", "content": [image]}]}), words)
    resp = post(base, "/v1/responses", {"model": MODEL, "input": [
        {"role": "user", "content": [{"type": "input_image", "image_url": data_url(picture(1))}]}]})
    _openai_error(resp, words)


def test_responses_file_id_is_refused(base: str) -> None:
    resp = post(base, "/v1/responses", {"model": SEEING, "input": [
        {"role": "user", "content": [{"type": "input_image", "file_id": "file-123"}]}]})
    _openai_error(resp, "file_id is not supported")


def test_remote_image_urls_are_refused(base: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]
    _openai_error(post(base, "/v1/chat/completions", {"model": SEEING, "messages": [
        {"role": "user", "content": content}]}), "image URLs are not currently supported")


# -- the CLI ------------------------------------------------------------------------------------


def test_run_attaches_image_paths(base: str, client: ollama.Client, tmp_path: Path) -> None:
    (tmp_path / "photo one.png").write_bytes(picture(21))
    env = {**os.environ, "PYLLAMA_HOST": base}
    done = subprocess.run([sys.executable, "-m", "pyllama", "run", SEEING, "what is in ./photo\\ one.png ?"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "Added image" in done.stderr and "photo one.png" in done.stderr
    want = client.generate(model=SEEING, prompt="what is in  ?", images=[picture(21)]).response
    assert done.stdout.strip() == want.strip()

