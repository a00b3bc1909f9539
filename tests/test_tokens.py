"""Token counts come from the cl100k_base file shipped in the package, checked against its sha256:
no other tokenizer, no tiktoken plugin, no download."""

import hashlib
import re
import shutil
import socket
from pathlib import Path

import pytest

import llmaudit
from llmaudit.normalize import content
from llmaudit.normalize.content import (
    CL100K_PATH,
    CL100K_SHA256,
    TokenizerFileError,
    count_tokens,
    encoding,
    load_bpe,
)

# Counted once with tiktoken.get_encoding("cl100k_base") (encode_ordinary); hard-coded here.
KNOWN = {
    "": 0,
    "hello world": 2,
    "Grüße aus Köln — 東京で会いましょう 🚀": 21,
    "<|endoftext|> and <|fim_prefix|>x": 15,  # special-token markers in content are plain text
    "def f(x):\n    return x**2  # 12345678": 15,
    " ".join(["cache"] * 120): 120,
}


@pytest.fixture
def fresh_encoding():
    """encoding() rebuilt inside the test and again after it (it is cached per process)."""
    encoding.cache_clear()
    yield
    encoding.cache_clear()


def test_the_encoding_is_built_from_the_file_shipped_in_the_package():
    package = Path(llmaudit.__file__).resolve().parent
    assert CL100K_PATH.resolve().is_relative_to(package) and CL100K_PATH.is_file()
    assert hashlib.sha256(CL100K_PATH.read_bytes()).hexdigest() == CL100K_SHA256
    enc = encoding()
    assert enc.name == "cl100k_base" and enc.n_vocab == 100277
    assert enc.eot_token == 100257


@pytest.mark.parametrize("text,n", list(KNOWN.items()))
def test_counts_match_cl100k_base(text, n):
    assert count_tokens(text) == n


def test_same_ranks_as_tiktokens_own_loader(monkeypatch):
    import tiktoken.load

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's loader, without its download cache
    try:
        theirs = tiktoken.load.load_tiktoken_bpe(str(CL100K_PATH), CL100K_SHA256)
    except ImportError as e:  # tiktoken < 0.8 reads local files through blobfile, an optional package
        pytest.skip(f"tiktoken's loader cannot read a local file here: {e}")
    ours = load_bpe(CL100K_PATH, CL100K_SHA256)
    assert len(ours) == 100256 and sorted(ours.values()) == list(range(100256))
    assert ours == theirs


def test_a_tampered_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "cl100k_base.tiktoken"
    data = bytearray(CL100K_PATH.read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(TokenizerFileError, match=re.escape(str(bad))):
        load_bpe(bad, CL100K_SHA256)


def test_a_missing_file_is_refused_with_its_name(tmp_path):
    gone = tmp_path / "cl100k_base.tiktoken"
    with pytest.raises(TokenizerFileError, match=re.escape(str(gone))):
        load_bpe(gone, CL100K_SHA256)


def test_no_fallback_when_the_shipped_file_is_wrong(tmp_path, monkeypatch, fresh_encoding):
    bad = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(CL100K_PATH, bad)
    with bad.open("ab") as f:
        f.write(b"aGk= 100277\n")
    monkeypatch.setattr(content, "CL100K_PATH", bad)
    with pytest.raises(TokenizerFileError, match=re.escape(str(bad))):
        count_tokens("hello world")


def test_no_network_no_tiktoken_registry_no_cache_dir(tmp_path, monkeypatch, fresh_encoding):
    import tiktoken

    def refuse(*args, **kwargs):
        raise AssertionError("token counting must not reach the network or tiktoken's registry")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    cache = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(cache))
    assert count_tokens("hello world") == 2
    assert not cache.exists()  # tiktoken's download cache is not involved
