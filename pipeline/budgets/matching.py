"""Which budgets apply to an event, and the ledger key each budget is stored under.

A budget matches an event when EVERY dimension of its scope equals the event's value
of that dimension (exact, case-sensitive; an event's empty dimension matches no
scope value, because scope values are non-empty). Dimensions the scope does not
name are ignored, so ``{"tenant": "acme"}`` covers all of acme's calls and
``{"tenant": "acme", "model": "gpt-4o"}`` only its gpt-4o calls. An event usually
matches several budgets; each is charged independently.

Ledger key: the budget id (:func:`ledger_key`). One budget ↔ one key ↔ one
partition of the faust table ↔ one owning task, so check-and-reserve on a budget
is a read-modify-write by a single task: atomic without locks. Keying by the
scope instead would put two budgets with the same scope (say a daily and a monthly
one) into one value whose updates must then be merged, and changing a budget's
limit or thresholds would move its key; the id is stable. The costing stream fans
each costed event out to the key of every matching budget (a repartition by
budget id), and the reserve path sends a request to every matching budget's key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from schemas.budgets import SCOPE_DIMENSIONS, BudgetDefinition

__all__ = ["BudgetIndex", "budget_matches", "event_dimensions", "ledger_key", "matching_budgets"]


def ledger_key(defn: BudgetDefinition) -> str:
    """The faust table key of ``defn``'s ledger: its id (see the module docstring)."""
    return defn.id


def event_dimensions(record: Any) -> dict[str, str]:
    """The scope dimensions of a usage/costed record (any object with those attributes)."""
    return {dim: str(getattr(record, dim, "") or "") for dim in SCOPE_DIMENSIONS}


def budget_matches(defn: BudgetDefinition, dimensions: Mapping[str, str]) -> bool:
    """True when every scope dimension of ``defn`` equals ``dimensions``' value."""
    return all(dimensions.get(dim) == value for dim, value in defn.scope.items())


def matching_budgets(
    budgets: Iterable[BudgetDefinition], dimensions: Mapping[str, str]
) -> list[BudgetDefinition]:
    """The budgets of ``budgets`` that apply to ``dimensions``, in the given order."""
    return [b for b in budgets if budget_matches(b, dimensions)]


class BudgetIndex:
    """Budgets grouped by scope shape, so matching costs one dict lookup per shape.

    With thousands of budgets but a handful of shapes (tenant; tenant+model; team;
    ...) this is what keeps per-event matching cheap in a batch. Results are in the
    order the budgets were given, like :func:`matching_budgets`.
    """

    def __init__(self, budgets: Sequence[BudgetDefinition]) -> None:
        ids = [b.id for b in budgets]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate budget ids: {', '.join(dupes)}")
        self._budgets = tuple(budgets)
        self._order = {b.id: n for n, b in enumerate(budgets)}
        self._by_shape: dict[tuple[str, ...], dict[tuple[str, ...], list[BudgetDefinition]]] = {}
        for b in budgets:
            shape = tuple(sorted(b.scope))
            values = tuple(b.scope[d] for d in shape)
            self._by_shape.setdefault(shape, {}).setdefault(values, []).append(b)

    @property
    def budgets(self) -> tuple[BudgetDefinition, ...]:
        return self._budgets

    def get(self, budget_id: str) -> BudgetDefinition | None:
        n = self._order.get(budget_id)
        return None if n is None else self._budgets[n]

    def match(self, dimensions: Mapping[str, str]) -> list[BudgetDefinition]:
        """Budgets applying to ``dimensions`` (same result as :func:`matching_budgets`)."""
        found: list[BudgetDefinition] = []
        for shape, table in self._by_shape.items():
            key = tuple(dimensions.get(d) or "" for d in shape)
            hit = table.get(key)
            if hit:
                found.extend(hit)
        found.sort(key=lambda b: self._order[b.id])
        return found
