"""LangChain's Ollama and OpenAI integrations against a real server, used as their docs show,
and the calls Open WebUI makes when it connects to an Ollama URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from inferenceutil import CALL, MODEL, TOOLS_TEMPLATE, inference_server, ndjson

PROMPT = [SystemMessage("You are a storyteller."), HumanMessage("Tell me a long story about a dragon.")]


@pytest.fixture(scope="module")
def base(module_models_dir: Path, model_path: Path) -> Iterator[str]:
    with inference_server(module_models_dir, model_path, parallel=2) as url:
        native = ollama.Client(host=url)
        native.create("smol-tools", files={"model.gguf": native.create_blob(model_path)}, template=TOOLS_TEMPLATE)
        yield url


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"18C and sunny in {city}"


def test_chat_ollama_invoke_and_stream(base: str) -> None:
    llm = ChatOllama(model=MODEL, base_url=base, temperature=0, seed=42, num_predict=10, num_ctx=512)
    answer = llm.invoke(PROMPT)
    assert isinstance(answer, AIMessage) and answer.content
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 10
    assert answer.response_metadata["done_reason"] == "length"
    streamed = "".join(str(chunk.content) for chunk in llm.stream(PROMPT))
    assert streamed == answer.content


def test_chat_ollama_tool_call_round_trip(base: str) -> None:
    llm = ChatOllama(model="smol-tools", base_url=base, temperature=0, num_predict=40, num_ctx=512, format=CALL)
    question = HumanMessage("Weather in Paris?")
    reply = llm.bind_tools([get_weather]).invoke([question])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]
    result = get_weather.invoke(reply.tool_calls[0])
    assert isinstance(result, ToolMessage)
    follow_up = ChatOllama(model=MODEL, base_url=base, temperature=0, num_predict=8, num_ctx=512)
    assert follow_up.invoke([question, reply, result]).content


def test_ollama_embeddings(base: str) -> None:
    embedder = OllamaEmbeddings(model=MODEL, base_url=base)
    docs = embedder.embed_documents(["red apple", "blue sky"])
    query = embedder.embed_query("red apple")
    assert len(docs) == 2 and len(docs[0]) == len(query) > 0
    assert docs[0] == pytest.approx(query, abs=1e-6)


def test_chat_openai_invoke_stream_and_tools(base: str) -> None:
    llm = ChatOpenAI(model=MODEL, base_url=base + "/v1", api_key="unused", temperature=0, seed=42,  # type: ignore
                     max_tokens=10, max_retries=0)  # type: ignore[call-arg]
    answer = llm.invoke(PROMPT)
    assert answer.content and answer.response_metadata["finish_reason"] == "length"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] == 10
    assert "".join(str(chunk.content) for chunk in llm.stream(PROMPT)) == answer.content

    tools_llm = ChatOpenAI(model="smol-tools", base_url=base + "/v1", api_key="unused", temperature=0,  # type: ignore
                           max_tokens=40, max_retries=0,  # type: ignore[call-arg]
                           model_kwargs={"response_format": {"type": "json_schema",
                                                             "json_schema": {"name": "call", "schema": CALL}}})
    bound = tools_llm.bind_tools([get_weather], strict=True)
    reply = bound.invoke([HumanMessage("Weather in Paris?")])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Paris"})]
    chunks = list(bound.stream([HumanMessage("Weather in Paris?")]))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk  # type: ignore[assignment]
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("get_weather", {"city": "Paris"})]  # type: ignore


def test_openai_embeddings(base: str) -> None:
    # check_embedding_ctx_length=False: otherwise the client tokenises with tiktoken's OpenAI vocabularies.
    embedder = OpenAIEmbeddings(model=MODEL, base_url=base + "/v1", api_key="unused",  # type: ignore[call-arg]
                                check_embedding_ctx_length=False)
    vectors = embedder.embed_documents(["red apple", "blue sky"])
    native = ollama.Client(host=base).embed(MODEL, input=["red apple", "blue sky"]).embeddings
    assert len(vectors) == 2
    for got, want in zip(vectors, native):
        assert got == pytest.approx(want, abs=1e-6)


def test_open_webui_connection_calls(base: str) -> None:
    """What Open WebUI sends to an Ollama connection: version, model list, running models, a streamed
    chat with its options and keep_alive, and the OpenAI model list for its OpenAI connection."""
    assert httpx.get(base + "/api/version").json()["version"]
    tags = httpx.get(base + "/api/tags").json()["models"]
    smol = next(m for m in tags if m["name"] == "smol:latest")
    assert smol["model"] == "smol:latest" and smol["details"]["format"] == "gguf" and smol["size"] > 0
    assert isinstance(httpx.get(base + "/api/ps").json()["models"], list)
    body = {"model": "smol:latest", "messages": [{"role": "user", "content": "Hi"}], "stream": True,
            "options": {"temperature": 0, "num_predict": 6, "num_ctx": 512}, "keep_alive": "5m"}
    resp, lines = ndjson(base, "/api/chat", body)
    assert resp.status_code == 200 and lines[-1]["done"] is True
    assert "".join(line["message"]["content"] for line in lines[:-1])
    show = httpx.post(base + "/api/show", json={"model": "smol:latest"}).json()
    assert "template" in show and "capabilities" in show
    models = httpx.get(base + "/v1/models").json()["data"]
    assert "smol:latest" in [m["id"] for m in models]
    assert json.loads(httpx.get(base + "/api/tags").text) == {"models": tags}
