"""Text streaming: UTF-8 safety and stop strings, alone and through the engine."""

from __future__ import annotations

from pyllama.engine import Chunk, Done, Engine
from pyllama.engine.streaming import TextStream, partial_stop_length

from engineutil import chat, run


def test_incomplete_characters_are_held_back() -> None:
    stream = TextStream()
    emoji = "🙂".encode()
    assert stream.push(b"a" + emoji[:1]) == "a"
    assert stream.push(emoji[1:3]) == ""
    assert stream.push(emoji[3:] + b"b") == "🙂b"
    assert stream.push(b"\xc3") == ""
    assert stream.finish() == ""  # a character cut off for good is dropped, as Ollama does


def test_stop_string_split_across_pieces_is_never_sent() -> None:
    stream = TextStream(["END"])
    assert stream.push(b"hello E") == "hello "
    assert stream.push(b"N") == ""
    assert stream.push(b"Dtrailing") == ""
    assert stream.stopped
    assert stream.push(b"more") == "" and stream.finish() == ""


def test_partial_match_released_when_it_cannot_match() -> None:
    stream = TextStream(["</s>", "###"])
    assert stream.push(b"a </") == "a "
    assert stream.push(b"x") == "</x"
    assert stream.push(b"##") == ""
    assert stream.finish() == "##"
    assert partial_stop_length("ab##", ["###"]) == 2
    assert partial_stop_length("abc", ["x"]) == 0


def test_earliest_of_several_stops_wins() -> None:
    stream = TextStream(["world", "lo w"])
    assert stream.push(b"hello world") == "hel"


def test_stop_string_from_a_greedy_run(engine2: Engine) -> None:
    prompt = chat(engine2.model, "Write three sentences about the sea.")
    chunks, _ = run(engine2, prompt, num_predict=40)
    tokens = [t for c in chunks for t in c.tokens]
    pieces = [engine2.model.token_to_piece(t).decode("utf-8", "replace") for t in tokens]
    text = "".join(c.text for c in chunks)
    # A stop string made of the end of one token and the start of the next.
    offset, stop = 0, ""
    for i in range(3, len(pieces) - 1):
        offset = sum(len(p) for p in pieces[:i + 1])
        left, right = pieces[i][-2:], pieces[i + 1][:2]
        candidate = left + right
        if len(left) == 2 and len(right) == 2 and text.find(candidate) == offset - 2:
            stop = candidate
            break
    assert stop, f"no usable token boundary in {pieces!r}"
    chunks, done = run(engine2, prompt, num_predict=40, stop=[stop])
    out = "".join(c.text for c in chunks)
    assert out == text[:offset - 2]
    assert stop not in out
    assert done.done_reason == "stop"


def test_utf8_events_equal_the_detokenized_output(engine2: Engine) -> None:
    prompt = chat(engine2.model, "Translate to Chinese: good morning, my friend!")
    chunks, done = run(engine2, prompt, num_predict=40)
    tokens = [t for c in chunks for t in c.tokens]
    assert done.eval_count >= len(tokens) > 0
    for chunk in chunks:
        chunk.text.encode("utf-8")  # every event is valid UTF-8 (no lone surrogates)
    assert "".join(c.text for c in chunks) == engine2.model.detokenize(tokens, unparse_special=True)
    cut = [t for t in tokens if _incomplete(engine2.model.token_to_piece(t))]
    assert cut, "the output has no token that ends inside a character; pick another prompt"


def _incomplete(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_forwarded_events_equal_the_mailbox_ones(engine2: Engine) -> None:
    import threading
    import time

    import pytest

    from pyllama.engine import GenerateRequest, SamplingOptions

    prompt = chat(engine2.model, "Write three sentences about the sea.")
    chunks, done = run(engine2, prompt, num_predict=80)
    request = GenerateRequest(prompt=prompt, options=SamplingOptions(temperature=0, num_predict=80))
    handle = engine2.submit(request)
    deadline = time.monotonic() + 60
    while not handle._items and time.monotonic() < deadline:  # a backlog must go first, in order
        time.sleep(0.005)
    got: list[object] = []
    threads: set[str] = set()
    finished = threading.Event()

    def sink(event: object) -> None:
        got.append(event)
        threads.add(threading.current_thread().name)
        if not isinstance(event, Chunk):
            finished.set()

    handle.forward(sink)
    assert finished.wait(60)
    assert "".join(e.text for e in got if isinstance(e, Chunk)) == "".join(c.text for c in chunks)
    assert [t for e in got if isinstance(e, Chunk) for t in e.tokens] == [t for c in chunks for t in c.tokens]
    assert isinstance(got[-1], Done) and got[-1].eval_count == done.eval_count
    # The backlog went on this thread, the rest on the loop thread (unless all of it was backlog:
    # one merged chunk and Done).
    assert len(threads) == 2 or len(got) == 2
    assert handle.get(timeout=1) is None  # nothing is left for the mailbox readers
    with pytest.raises(RuntimeError, match="already forwarded"):
        handle.forward(sink)
