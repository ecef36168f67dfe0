"""Truncate a chat history to fit a token budget, newest messages first.

Contract of :func:`truncate_to_fit`:

* every system/developer message is kept, wherever it stands;
* the other messages are kept as the newest contiguous run that fits: the
  conversation loses its oldest turns, never a turn in the middle;
* an assistant message with ``tool_calls`` and the ``tool`` results that follow it
  form one unit, kept or dropped together (the API rejects a tool result without
  its call and a call without its results);
* the returned ``tokens`` is :func:`~pipeline.costing.tokens.count_messages` of the
  returned messages (with ``tools``) and is always ``<= budget_tokens``;
* when the system messages plus the newest unit do not fit, nothing sensible can
  be sent: :class:`BudgetTooSmallError` (a ``UserError``) is raised, carrying the
  tokens that minimum needs. Raising rather than returning a flag means a caller
  cannot send an over-budget request by forgetting to look at the flag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.costing.tokens import (
    _estimate_factor,
    _message_tokens,
    _messages_text,
    _rules_for,
    count_messages,
    encoding_for_model,
    get_encoding,
    model_family,
    validate_messages,
)
from pipeline.errors import UserError

__all__ = ["BudgetTooSmallError", "TruncateResult", "truncate_to_fit"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
_TOOL_RESULT_ROLES = frozenset({"tool", "function"})


class BudgetTooSmallError(UserError):
    """The system messages plus the newest message (unit) exceed the budget."""

    def __init__(self, message: str, needed_tokens: int, budget_tokens: int) -> None:
        super().__init__(message)
        self.needed_tokens = needed_tokens
        self.budget_tokens = budget_tokens


@dataclass(frozen=True)
class TruncateResult:
    """Kept messages (original order), indices of dropped ones, tokens of the kept."""

    messages: list[dict[str, Any]]
    dropped: tuple[int, ...]
    tokens: int
    exact: bool = True

    @property
    def dropped_count(self) -> int:
        return len(self.dropped)


def _units(messages: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Group non-system message indices into units that must stay together.

    A tool result joins the nearest preceding assistant message with tool calls
    if only tool results (or system messages) stand between them; otherwise it is
    a unit of its own.
    """
    units: list[list[int]] = []
    open_call_unit: list[int] | None = None
    for i, msg in enumerate(messages):
        role = msg["role"]
        if role in _SYSTEM_ROLES:
            continue
        if role in _TOOL_RESULT_ROLES and open_call_unit is not None:
            open_call_unit.append(i)
            continue
        unit = [i]
        units.append(unit)
        open_call_unit = unit if role == "assistant" and msg.get("tool_calls") else None
    return units


def truncate_to_fit(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    budget_tokens: int,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> TruncateResult:
    """Keep system messages and the newest units that fit in ``budget_tokens``.

    See the module docstring for the contract. Raises :class:`BudgetTooSmallError`
    when even the system messages plus the newest unit do not fit, and
    ``UserError`` for malformed messages or a negative budget.
    """
    validate_messages(list(messages))
    if budget_tokens < 0:
        raise UserError(f"budget_tokens: must not be negative, got {budget_tokens}")
    msgs = [dict(m) for m in messages]
    system_idx = [i for i, m in enumerate(msgs) if m["role"] in _SYSTEM_ROLES]
    units = _units(msgs)

    # Additive per-message costs pick the candidate quickly; the exact recount below
    # (count_messages on the real list) is what decides and what is reported.
    enc = encoding_for_model(model)
    base = enc if enc is not None else get_encoding("o200k_base")
    rules = _rules_for(model)
    factor = 1.0
    if enc is None:
        factor, _ = _estimate_factor(model_family(model), _messages_text(msgs))
    cost = [_message_tokens(m, base, rules)[0] * factor for m in msgs]
    fixed = count_messages([msgs[i] for i in system_idx], model, tools).tokens

    kept_units = 0
    running = float(fixed)
    for unit in reversed(units):
        unit_cost = sum(cost[i] for i in unit)
        if math.ceil(running + unit_cost) > budget_tokens:
            break
        running += unit_cost
        kept_units += 1

    def build(n_units: int) -> tuple[list[int], int, bool]:
        keep = set(system_idx)
        for unit in units[len(units) - n_units :]:
            keep.update(unit)
        idx = sorted(keep)
        tc = count_messages([msgs[i] for i in idx], model, tools)
        return idx, tc.tokens, tc.exact

    idx, tokens, exact = build(kept_units)
    # Non-additive estimates (family factor, rounding) can overshoot: shed more.
    while tokens > budget_tokens and kept_units > 0:
        kept_units -= 1
        idx, tokens, exact = build(kept_units)
    # ...or undershoot: take more while the real count still fits.
    while kept_units < len(units):
        cand = build(kept_units + 1)
        if cand[1] > budget_tokens:
            break
        kept_units += 1
        idx, tokens, exact = cand

    if tokens > budget_tokens or (units and kept_units == 0):
        needed = build(1)[1] if units else tokens
        what = "system prompt(s) + newest message" if units else "system prompt(s)"
        raise BudgetTooSmallError(
            f"budget_tokens: {what} need {needed} tokens for {model}, budget is "
            f"{budget_tokens}; nothing can be sent without cutting them",
            needed_tokens=needed,
            budget_tokens=budget_tokens,
        )
    kept = set(idx)
    dropped = tuple(i for i in range(len(msgs)) if i not in kept)
    return TruncateResult([msgs[i] for i in idx], dropped, tokens, exact)
