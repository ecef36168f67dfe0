"""Pure helpers of the budget control plane: message shapes, replay dedup, alert mapping.

``budget.updates`` (one partition, see :mod:`pipeline.control`) carries two kinds of
JSON messages, both applied by the ledger agent in log order:

* ``{"t": "costed", "b": <budget id>, "r": [[partition, seq, record], ...]}`` — the
  costed records of one mapper batch that match budget ``b``. ``partition`` is the
  ``usage.costed`` partition the record came from and ``seq`` is
  ``offset << SEQ_SHIFT | index in the message``: a costed message holds many
  records, and the ledger's per-partition watermarks need one increasing number
  per record. ``record`` is :func:`compact_record` (only what the ledger reads).
* ``{"t": "reserve", "id": <command id>, "origin": <worker>, "deadline": <unix s>,
  "b": [<budget ids>], "req": <ReserveRequest JSON>}`` — a check-and-reserve over
  every listed budget, applied atomically (one event, one task).

The ledger table value is :func:`encode_value`: the ledger state plus a bounded
list of recently applied event ids (:class:`RecentIds`). The watermarks skip a
replay of the SAME costed message; the recent ids skip a costed record that the
costing agent produced AGAIN at a new offset after a kill -9 (its in-memory dedup
window is lost), which ClickHouse also counts once (usage_raw dedups on event_id).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.budgets.ledger import LedgerState, new_state, state_from_dict, state_to_dict
from schemas.alerts import AlertEvent, Severity
from schemas.budgets import Alert, BudgetDefinition
from schemas.usage import parse_wire_ts

SEQ_SHIFT = 20
"""Bits of a costed message's record index in ``seq`` (a message holds < 2**20 records)."""

RECENT_IDS = 8192
"""Event ids remembered per budget to skip re-costed duplicates (covers the costing
agent's uncommitted tail: ~1 s of events per budget at the default commit interval)."""


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """What the ledger reads of a costed record (fits ``ledger.CostedRecord``)."""

    event_id: str
    ts: datetime
    cost_usd: Decimal
    priced: bool
    input_tokens: int
    output_tokens: int
    reservation_id: str | None


def compact_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``CostedUsage`` dict the ledger needs, under short names."""
    return {
        "e": rec["event_id"],
        "ts": rec["ts"],
        "c": str(rec.get("cost_usd", "0")),
        "p": bool(rec.get("priced", False)),
        "i": int(rec.get("input_tokens", 0)),
        "o": int(rec.get("output_tokens", 0)),
        "r": rec.get("reservation_id") or None,
    }


def record_from_compact(d: Mapping[str, Any]) -> LedgerRecord:
    return LedgerRecord(
        event_id=d["e"],
        ts=parse_wire_ts(d["ts"]),
        cost_usd=Decimal(d["c"]),
        priced=bool(d["p"]),
        input_tokens=int(d["i"]),
        output_tokens=int(d["o"]),
        reservation_id=d.get("r"),
    )


def costed_message(budget_id: str, items: list[tuple[int, int, dict[str, Any]]]) -> bytes:
    return json.dumps(
        {"t": "costed", "b": budget_id, "r": [[p, s, r] for p, s, r in items]},
        separators=(",", ":"),
    ).encode()


def seq(offset: int, index: int) -> int:
    """One increasing number per record of a partition: message offset, then index."""
    return (offset << SEQ_SHIFT) | index


class RecentIds:
    """A bounded FIFO set of event-id hashes (8 bytes of BLAKE2b, hex)."""

    def __init__(self, hashes: Iterable[str] = (), limit: int = RECENT_IDS) -> None:
        self.limit = limit
        self._order: deque[str] = deque(hashes)
        self._set = set(self._order)
        self._trim()

    @staticmethod
    def digest(event_id: str) -> str:
        return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.digest(event_id) in self._set

    def add(self, event_id: str) -> None:
        h = self.digest(event_id)
        if h not in self._set:
            self._set.add(h)
            self._order.append(h)
            self._trim()

    def _trim(self) -> None:
        while len(self._order) > self.limit:
            self._set.discard(self._order.popleft())

    def to_list(self) -> list[str]:
        return list(self._order)


def decode_value(
    value: Mapping[str, Any] | None, defn: BudgetDefinition
) -> tuple[LedgerState, RecentIds]:
    """The table value of ``defn`` (``None``: a fresh ledger). A value left by a budget
    that was deleted and re-created under the same id is kept (same id, same ledger)."""
    if not value:
        return new_state(defn), RecentIds()
    return state_from_dict(value["ledger"]), RecentIds(value.get("recent", ()))


def encode_value(state: LedgerState, recent: RecentIds) -> dict[str, Any]:
    return {"ledger": state_to_dict(state), "recent": recent.to_list()}


def dedup_records(
    items: Iterable[tuple[int, int, LedgerRecord]], recent: RecentIds
) -> list[tuple[int, int, LedgerRecord]]:
    """Drop records whose event id was applied already (or twice in ``items``).

    Records that are not applied for another reason (at or below the watermark) are
    still remembered: they were applied before, by definition.
    """
    out: list[tuple[int, int, LedgerRecord]] = []
    for p, s, rec in items:
        if rec.event_id in recent:
            continue
        recent.add(rec.event_id)
        out.append((p, s, rec))
    return out


def alert_event(alert: Alert, defn: BudgetDefinition | None) -> AlertEvent:
    """The generic ``AlertEvent`` (rules, webhooks) of a budget threshold crossing.

    Its id is the budget alert's deterministic id, so every re-emission of the same
    crossing is the same alert downstream (ClickHouse row, webhook Idempotency-Key).
    """
    scope: dict[str, str] = {str(k): v for k, v in defn.scope.items()} if defn else {}
    tenant = scope.pop("tenant", "")
    severity: Severity = "critical" if alert.emergency or alert.threshold >= 100 else "warning"
    name = (defn.name if defn is not None else "") or alert.budget_id
    unit = "USD" if alert.unit == "usd" else "tokens"
    return AlertEvent(
        alert_id=alert.alert_id,
        kind="budget_threshold",
        tenant=tenant,
        scope=scope,
        severity=severity,
        title=f"Budget {name} reached {alert.threshold}% ({alert.spent} of {alert.limit} {unit})",
        text=(
            f"Budget {alert.budget_id} ({alert.mode}) crossed {alert.threshold}% of its limit "
            f"in the period starting {alert.period_start.isoformat()}: spent {alert.spent} "
            f"of {alert.limit} {unit} (event {alert.event_id})."
        ),
        data={
            "budget_id": alert.budget_id,
            "threshold": alert.threshold,
            "emergency": alert.emergency,
            "spent": str(alert.spent),
            "limit": str(alert.limit),
            "unit": alert.unit,
            "mode": alert.mode,
            "period_start": alert.period_start.isoformat(),
            "event_id": alert.event_id,
        },
        ts=alert.ts,
    )


BUDGET_COLUMNS = (
    "id",
    "version",
    "name",
    "scope",
    "period",
    "unit",
    "limit",
    "mode",
    "definition",
    "deleted",
    "updated_at",
)


def budget_row(
    budget_id: str, defn: BudgetDefinition | None, version: int, at: datetime
) -> tuple[Any, ...]:
    """A row of the ClickHouse ``budgets`` history (``BUDGET_COLUMNS``); ``None``: deleted."""
    if defn is None:
        return (budget_id, version, "", {}, "", "", Decimal(0), "", "", 1, at)
    return (
        defn.id,
        version,
        defn.name,
        dict(defn.scope),
        defn.period,
        defn.unit,
        defn.limit,
        defn.mode,
        defn.model_dump_json(),
        0,
        at,
    )


def alert_row(alert: AlertEvent) -> tuple[Any, ...]:
    """A row of the ClickHouse ``alerts`` table (see ``ALERT_COLUMNS``)."""
    return (
        alert.alert_id,
        alert.kind,
        alert.tenant,
        dict(alert.scope),
        alert.severity,
        alert.title,
        alert.text,
        json.dumps(alert.data, separators=(",", ":"), sort_keys=True, default=str),
        str(alert.data.get("budget_id", "")),
        alert.ts,
    )


ALERT_COLUMNS = (
    "alert_id",
    "kind",
    "tenant",
    "scope",
    "severity",
    "title",
    "text",
    "data",
    "budget_id",
    "ts",
)
DELIVERY_COLUMNS = (
    "delivery_id",
    "alert_id",
    "channel",
    "attempt",
    "status",
    "http_status",
    "error",
    "latency_ms",
    "ts",
)
