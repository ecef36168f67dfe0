"""Extraction gives canonical counts: cache inside input, reasoning inside output, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.costing.extract import (
    AnthropicStreamAccumulator,
    from_anthropic,
    from_google,
    from_openai,
)
from pipeline.costing.usage import TokenUsage
from pipeline.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeSDKObject:
    """Stands in for an SDK (pydantic) response: only ``model_dump`` is used."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def model_dump(self, by_alias: bool = False) -> dict[str, Any]:
        return self._data


def test_openai_chat_cached_tokens_stay_inside_prompt_tokens() -> None:
    ex = from_openai(load("openai_chat_completion.json"))
    # prompt_tokens 1117 already includes the 1024 cached: input stays 1117, not 2141.
    assert ex.usage == TokenUsage(1117, 46, cache_read_tokens=1024)
    assert ex.usage.uncached_input_tokens == 93
    assert ex.model == "gpt-4o-2024-08-06"
    assert ex.provider == "openai"


def test_openai_chat_reasoning_inside_completion_tokens() -> None:
    ex = from_openai(load("openai_chat_completion_reasoning.json"))
    assert ex.usage == TokenUsage(2400, 3056, cache_read_tokens=1280, reasoning_tokens=2240)
    assert ex.model == "o4-mini-2025-04-16"


def test_openai_stream_final_chunk() -> None:
    ex = from_openai(load("openai_chat_stream_final_chunk.json"))
    assert ex.usage == TokenUsage(2048, 120, cache_read_tokens=1536)


def test_openai_stream_chunk_without_usage_is_an_error() -> None:
    with pytest.raises(UserError, match="include_usage"):
        from_openai(load("openai_chat_stream_chunk_no_usage.json"))


def test_openai_responses_api() -> None:
    ex = from_openai(load("openai_responses.json"))
    assert ex.usage == TokenUsage(5200, 1850, cache_read_tokens=4096, reasoning_tokens=1472)
    assert ex.model == "gpt-5-2025-08-07"


def test_openai_responses_completed_event_is_unwrapped() -> None:
    ex = from_openai(load("openai_responses_completed_event.json"))
    assert ex.usage == TokenUsage(300, 25)
    assert ex.model == "gpt-4.1-2025-04-14"


def test_openai_sdk_object_and_bare_usage() -> None:
    data = load("openai_chat_completion.json")
    assert from_openai(FakeSDKObject(data)).usage == from_openai(data).usage
    bare = from_openai(data["usage"])
    assert bare.usage == TokenUsage(1117, 46, cache_read_tokens=1024)
    assert bare.model is None


def test_anthropic_cache_write_added_into_input() -> None:
    ex = from_anthropic(load("anthropic_message.json"))
    # Anthropic input_tokens (21) excludes the 188086 written to the cache.
    assert ex.usage == TokenUsage(21 + 188086, 393, cache_write_tokens=188086)
    assert ex.usage.uncached_input_tokens == 21
    assert ex.model == "claude-sonnet-4-5-20250929"
    assert ex.provider == "anthropic"


def test_anthropic_cache_read_added_into_input() -> None:
    ex = from_anthropic(FakeSDKObject(load("anthropic_message_cache_read.json")))
    assert ex.usage == TokenUsage(100050, 1200, cache_read_tokens=100000)


def test_anthropic_stream_accumulates_cumulative_deltas_once() -> None:
    acc = AnthropicStreamAccumulator()
    for event in load("anthropic_stream_events.json"):
        acc.add(event)
    ex = acc.result()
    # input 472 + cache read 2048; output is the LAST cumulative delta (15), not 2+9+15.
    assert ex.usage == TokenUsage(2520, 15, cache_read_tokens=2048)
    assert ex.model == "claude-opus-4-1-20250805"


def test_anthropic_stream_delta_with_input_counts_replaces_them() -> None:
    acc = AnthropicStreamAccumulator()
    acc.add(
        {
            "type": "message_start",
            "message": {
                "model": "claude-haiku-4-5",
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        }
    )
    acc.add(
        {
            "type": "message_delta",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 40},
        }
    )
    assert acc.result().usage == TokenUsage(100, 40, cache_read_tokens=90)


def test_anthropic_stream_without_start_is_an_error() -> None:
    acc = AnthropicStreamAccumulator()
    acc.add({"type": "message_delta", "usage": {"output_tokens": 3}})
    with pytest.raises(UserError, match="message_start"):
        acc.result()


def test_google_thoughts_added_into_output_cache_stays_inside_prompt() -> None:
    ex = from_google(load("google_generate_content.json"))
    # promptTokenCount includes cached content; thoughts are outside candidates.
    assert ex.usage == TokenUsage(12000, 800 + 1200, cache_read_tokens=8000, reasoning_tokens=1200)
    assert ex.model == "gemini-2.5-pro"
    assert ex.provider == "google"


@pytest.mark.parametrize(
    ("func", "payload"),
    [
        (from_openai, {"id": "x"}),
        (from_anthropic, {"id": "x"}),
        (from_google, {"candidates": []}),
        (from_openai, 42),
    ],
)
def test_missing_usage_is_a_user_error(func: Any, payload: Any) -> None:
    with pytest.raises(UserError):
        func(payload)


def test_negative_counts_rejected() -> None:
    with pytest.raises(UserError):
        from_openai({"usage": {"prompt_tokens": -1, "completion_tokens": 3}})
