"""Budgets: periods, matching, the pure ledger (reserve / settle / thresholds), suggestions.

Pure logic only; the faust wiring keeps one :class:`~pipeline.budgets.ledger.LedgerState`
per budget id in a table and calls these functions once per key per batch.
"""

from pipeline.budgets.ledger import (
    LedgerState,
    apply_costed,
    combine_decisions,
    expire,
    new_state,
    release,
    reserve,
    state_from_dict,
    state_to_dict,
    status,
)
from pipeline.budgets.matching import BudgetIndex, budget_matches, ledger_key, matching_budgets
from pipeline.budgets.periods import period_end, period_start

__all__ = [
    "BudgetIndex",
    "LedgerState",
    "apply_costed",
    "budget_matches",
    "combine_decisions",
    "expire",
    "ledger_key",
    "matching_budgets",
    "new_state",
    "period_end",
    "period_start",
    "release",
    "reserve",
    "state_from_dict",
    "state_to_dict",
    "status",
]
