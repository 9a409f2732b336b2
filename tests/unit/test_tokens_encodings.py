import hashlib
import socket
import threading
from pathlib import Path

import pytest
import tiktoken

from llm_routing.tokens import _encodings, count_tokens, get_encoding
from llm_routing.tokens._encodings import _EncodingSource, max_token_bytes

CORPUS = Path(__file__).parent.parent / "data" / "corpus"


@pytest.fixture
def cold_cache(monkeypatch):
    """Forget built encodings so the test exercises the first load."""
    monkeypatch.setattr(_encodings, "_encodings", {})
    monkeypatch.setattr(_encodings, "_max_token_bytes", {})


def test_o200k_hello_world_has_known_ids():
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]


def test_cl100k_hello_world_has_known_ids():
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_shipped_file_hash_matches_openai_published_hash(name):
    source = _encodings._SOURCES[name]
    data = (Path(_encodings.__file__).parent / "data" / source.filename).read_bytes()
    assert hashlib.sha256(data).hexdigest() == source.sha256


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_decode_of_encode_roundtrips_corpus(name, path):
    enc = get_encoding(name)
    text = path.read_text("utf-8")
    assert enc.decode(enc.encode_ordinary(text)) == text


def test_encodings_have_openai_vocabulary_sizes():
    assert get_encoding("o200k_base").n_vocab == 200019
    assert get_encoding("cl100k_base").n_vocab == 100277


def test_longest_token_is_128_bytes():
    assert max_token_bytes("o200k_base") == 128
    assert max_token_bytes("cl100k_base") == 128


def test_counting_touches_no_network(monkeypatch, cold_cache):
    def refuse(*args, **kwargs):
        raise AssertionError("token counting tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)
    assert count_tokens("hello world", "o200k_base") == 2
    assert count_tokens("hello world", "cl100k_base") == 2
    assert count_tokens([("user", "hello")], "gpt-4o-mini") > 2


def test_corrupted_file_is_a_clear_error(monkeypatch, cold_cache):
    real = _encodings._SOURCES["cl100k_base"]
    fake = _EncodingSource(real.filename, "0" * 64, real.pat_str, real.special_tokens)
    monkeypatch.setitem(_encodings._SOURCES, "cl100k_base", fake)
    with pytest.raises(RuntimeError, match=r"corrupted or was replaced.*Reinstall"):
        get_encoding("cl100k_base")


def test_unknown_encoding_names_the_shipped_ones():
    with pytest.raises(ValueError, match="o200k_base, cl100k_base"):
        get_encoding("p50k_base")


def test_concurrent_first_loads_build_one_encoding(cold_cache):
    results = []
    barrier = threading.Barrier(6)

    def load():
        barrier.wait()
        results.append(get_encoding("cl100k_base"))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    assert all(r is results[0] for r in results)


@pytest.mark.parametrize("special", ["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>"])
def test_special_token_text_counts_as_ordinary_text(special):
    enc = get_encoding("o200k_base")
    text = f"say {special} please"
    expected = len(enc.encode(text, disallowed_special=()))
    assert count_tokens(text, "gpt-4o-mini") == expected
    assert 199999 not in enc.encode_ordinary(text)
