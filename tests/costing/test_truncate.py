"""truncate_to_fit: system kept, newest kept, tool calls never split, always fits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.costing.tokens import count_messages
from pipeline.costing.truncate import BudgetTooSmallError, truncate_to_fit
from pipeline.errors import UserError

SYSTEM = {"role": "system", "content": "You are a terse assistant."}


def _turn(i: int, words: int = 20) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"question {i} " + "lorem ipsum " * words},
        {"role": "assistant", "content": f"answer {i} " + "dolor sit amet " * words},
    ]


def _tool_exchange(call_id: str, n_results: int = 2) -> list[dict[str, Any]]:
    calls = [
        {
            "id": f"{call_id}_{k}",
            "type": "function",
            "function": {"name": "lookup", "arguments": f'{{"q": "item {k}"}}'},
        }
        for k in range(n_results)
    ]
    out: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": calls}]
    out += [{"role": "tool", "tool_call_id": c["id"], "content": "result " * 30} for c in calls]
    return out


def test_everything_fits_nothing_dropped() -> None:
    msgs = [SYSTEM, *_turn(1), *_turn(2)]
    r = truncate_to_fit(msgs, "gpt-4o", 10_000)
    assert r.messages == msgs
    assert r.dropped == ()
    assert r.dropped_count == 0
    assert r.tokens == count_messages(msgs, "gpt-4o").tokens


def test_keeps_system_and_newest_turns() -> None:
    msgs = [SYSTEM, *_turn(1), *_turn(2), *_turn(3), {"role": "user", "content": "last?"}]
    need = count_messages([SYSTEM, *_turn(3), msgs[-1]], "gpt-4o").tokens
    r = truncate_to_fit(msgs, "gpt-4o", need)
    assert r.messages == [SYSTEM, *_turn(3), msgs[-1]]
    assert r.dropped == (1, 2, 3, 4)
    assert r.tokens == need


def test_system_messages_kept_wherever_they_are() -> None:
    mid_system = {"role": "developer", "content": "Answer in French."}
    msgs = [SYSTEM, *_turn(1), mid_system, *_turn(2)]
    r = truncate_to_fit(
        msgs, "gpt-4o", count_messages([SYSTEM, mid_system, *_turn(2)], "gpt-4o").tokens
    )
    assert r.messages == [SYSTEM, mid_system, *_turn(2)]
    assert r.dropped == (1, 2)


def test_tool_call_and_results_dropped_together() -> None:
    exchange = _tool_exchange("c1", n_results=3)
    msgs = [
        SYSTEM,
        {"role": "user", "content": "look things up"},
        *exchange,
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]
    tail = msgs[-2:]
    # Budget: enough for the tail and one tool result, not for the whole exchange.
    budget = count_messages([SYSTEM, exchange[-1], *tail], "gpt-4o").tokens
    r = truncate_to_fit(msgs, "gpt-4o", budget)
    assert r.messages == [SYSTEM, *tail]
    assert r.dropped == (1, 2, 3, 4, 5)
    assert r.tokens <= budget


def test_tool_exchange_kept_whole_when_it_fits() -> None:
    exchange = _tool_exchange("c1")
    msgs = [SYSTEM, *_turn(1, words=200), {"role": "user", "content": "look up"}, *exchange]
    budget = count_messages([SYSTEM, msgs[3], *exchange], "gpt-4o").tokens
    r = truncate_to_fit(msgs, "gpt-4o", budget)
    assert r.messages == [SYSTEM, msgs[3], *exchange]
    assert r.dropped == (1, 2)


def test_budget_too_small_for_system_plus_newest_raises() -> None:
    msgs = [SYSTEM, *_turn(1), {"role": "user", "content": "word " * 500}]
    with pytest.raises(BudgetTooSmallError, match="newest message need") as info:
        truncate_to_fit(msgs, "gpt-4o", 100)
    assert isinstance(info.value, UserError)
    assert info.value.needed_tokens == count_messages([SYSTEM, msgs[-1]], "gpt-4o").tokens
    assert info.value.budget_tokens == 100


def test_newest_tool_exchange_is_one_unit_for_the_minimum() -> None:
    msgs = [SYSTEM, {"role": "user", "content": "go"}, *_tool_exchange("c", 4)]
    one_result = count_messages([SYSTEM, msgs[-1]], "gpt-4o").tokens
    with pytest.raises(BudgetTooSmallError):
        truncate_to_fit(msgs, "gpt-4o", one_result)


def test_tools_definitions_count_against_the_budget() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look up " * 50,
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    msgs = [SYSTEM, *_turn(1), *_turn(2)]
    budget = count_messages(msgs, "gpt-4o").tokens  # fits without tools, not with them
    r = truncate_to_fit(msgs, "gpt-4o", budget, tools=tools)
    assert r.dropped
    assert r.tokens == count_messages(r.messages, "gpt-4o", tools).tokens <= budget


def test_estimated_models_fit_too() -> None:
    msgs = [SYSTEM, *_turn(1), *_turn(2), *_turn(3)]
    budget = count_messages(msgs, "claude-sonnet-4-5").tokens - 1
    r = truncate_to_fit(msgs, "claude-sonnet-4-5", budget)
    assert r.exact is False
    assert r.dropped
    assert r.tokens == count_messages(r.messages, "claude-sonnet-4-5").tokens <= budget


def test_bad_input() -> None:
    with pytest.raises(UserError, match="budget_tokens"):
        truncate_to_fit([SYSTEM], "gpt-4o", -1)
    with pytest.raises(UserError, match=r"messages\[0\]\.role"):
        truncate_to_fit([{"content": "x"}], "gpt-4o", 100)


# ------------------------------------------------------------------- property

_texts = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=120
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(_texts)})
    for k in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["user", "assistant", "tools", "system"]))
        if kind == "tools":
            n = draw(st.integers(1, 3))
            calls = [
                {
                    "id": f"c{k}_{j}",
                    "type": "function",
                    "function": {"name": "f", "arguments": draw(_texts)},
                }
                for j in range(n)
            ]
            msgs.append({"role": "assistant", "content": None, "tool_calls": calls})
            msgs += [
                {"role": "tool", "tool_call_id": c["id"], "content": draw(_texts)} for c in calls
            ]
        else:
            msgs.append({"role": kind, "content": draw(_texts)})
    return msgs


def _units_intact(msgs: list[dict[str, Any]], kept_idx: set[int]) -> bool:
    """Every assistant tool-call message is kept iff all its following tool results are."""
    for i, m in enumerate(msgs):
        if m["role"] == "assistant" and m.get("tool_calls"):
            j = i + 1
            while j < len(msgs) and msgs[j]["role"] == "tool":
                if (i in kept_idx) != (j in kept_idx):
                    return False
                j += 1
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conversations(), st.integers(0, 400), st.sampled_from(["gpt-4o", "gpt-4", "claude-3-5-haiku"])
)
def test_property_result_always_fits(msgs: list[dict[str, Any]], budget: int, model: str) -> None:
    try:
        r = truncate_to_fit(msgs, model, budget)
    except BudgetTooSmallError as exc:
        assert exc.needed_tokens > budget
        return
    assert r.tokens <= budget
    assert r.tokens == count_messages(r.messages, model).tokens
    kept_idx = set(range(len(msgs))) - set(r.dropped)
    assert [msgs[i] for i in sorted(kept_idx)] == r.messages
    # all system messages kept
    assert all(i in kept_idx for i, m in enumerate(msgs) if m["role"] == "system")
    assert _units_intact(msgs, kept_idx)
    # kept non-system messages form the newest contiguous run
    non_system = [i for i, m in enumerate(msgs) if m["role"] != "system"]
    kept_ns = [i for i in non_system if i in kept_idx]
    assert kept_ns == non_system[len(non_system) - len(kept_ns) :]
