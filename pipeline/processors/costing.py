"""The costing processor: raw usage messages in, priced records and dead letters out.

Pure batch logic (no Kafka): ``CostingProcessor.process`` takes a batch of
messages from ``usage.events`` — each one event or a JSON array of events — and
returns

* ``costed``: priced records grouped by tenant (the output key), as JSON-ready
  dicts in the ``CostedUsage`` shape (money as decimal strings);
* ``dead_letters``: one ``DeadLetter`` per rejected item, with the original bytes,
  every problem, and topic/partition/offset;
* counters for metrics.

Nothing here raises on bad data; an event that cannot be priced is kept with
``priced=False`` and its reason (never a silent $0). Pricing runs once for the
whole batch (``PriceCatalog.price_many``), which is what makes it fast.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.costing.pricing import PriceCatalog, PriceResult
from pipeline.costing.usage import TokenUsage
from pipeline.dedup import DedupWindow
from schemas.dlq import DeadLetter
from schemas.usage import UsageEvent, wire_ts
from schemas.validation import Rejected, validate_payload

_TOP_LEVEL = frozenset(UsageEvent.model_fields)


@dataclass(frozen=True, slots=True)
class InMessage:
    """One consumed Kafka message: its raw value and where it came from."""

    value: bytes
    topic: str
    partition: int
    offset: int


@dataclass
class CostingResult:
    """What one batch produced. ``costed`` maps tenant → records for ``usage.costed``."""

    costed: dict[str, list[CostedRecord]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    events_in: int = 0
    duplicates: int = 0
    unpriced: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def costed_count(self) -> int:
        return sum(len(v) for v in self.costed.values())


def reject_reason(rejected: Rejected) -> str:
    """A low-cardinality label for metrics: the first bad top-level field, or the kind."""
    first = rejected.problems[0]
    if first.message.startswith("malformed JSON"):
        return "malformed_json"
    if not first.path:
        return "not_an_object" if "expected a JSON object" in first.message else "constraint"
    top = first.path.split(".", 1)[0]
    return top if top in _TOP_LEVEL else "other"


@dataclass(frozen=True, slots=True)
class CostedRecord:
    """One priced event: its id and time (for the message headers) and its JSON object."""

    event_id: str
    ts: datetime
    json: bytes

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.json)
        return data


def costed_json(event: UsageEvent, price: PriceResult, costed_at: str) -> bytes:
    """The ``CostedUsage`` JSON object of ``event`` priced as ``price``.

    The event part is serialised by pydantic-core (Rust) and the price fields are
    appended: no per-event dict, no ``json.dumps`` (together they were a quarter of
    the costing agent's time). ``CostedUsage.model_validate_json`` accepts the result
    (tested). Money is written as plain decimal strings (``format(d, "f")``: never
    exponent notation, which ClickHouse would not parse as Decimal).
    """
    if not event.provider:
        event.provider = price.provider
    head = event.model_dump_json().encode()
    reason = "null" if price.reason is None else json.dumps(price.reason)
    tail = (
        f',"cost_usd":"{price.cost_usd:f}","input_cost_usd":"{price.input_cost_usd:f}",'
        f'"cache_read_cost_usd":"{price.cache_read_cost_usd:f}",'
        f'"cache_write_cost_usd":"{price.cache_write_cost_usd:f}",'
        f'"output_cost_usd":"{price.output_cost_usd:f}",'
        f'"priced":{"true" if price.priced else "false"},'
        f'"price_source":{json.dumps(price.price_source if price.priced else "none")},'
        f'"price_version":{json.dumps(price.price_version)},'
        f'"unpriced_reason":{reason},"costed_at":"{costed_at}"}}'
    )
    return head[:-1] + tail.encode()


COSTED_RECORDS_PER_MESSAGE = 1000
"""Costed records per ``usage.costed`` message (one JSON array; keeps messages < 1 MB)."""

HEADER_IDS = "tp-ids"
HEADER_TS = "tp-ts"


def encode_costed(
    records: list[CostedRecord], per_message: int = COSTED_RECORDS_PER_MESSAGE
) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    """``usage.costed`` message values (JSON arrays) with their index headers.

    Headers ``tp-ids`` (JSON array of the event ids) and ``tp-ts`` (``min,max`` ts)
    let the sink check for replays and insert the bytes as they are, without
    parsing a single record (see ``processors.sink``).
    """
    out = []
    for i in range(0, len(records), per_message):
        chunk = records[i : i + per_message]
        stamps = [r.ts for r in chunk]
        headers = [
            (HEADER_IDS, json.dumps([r.event_id for r in chunk]).encode()),
            (HEADER_TS, f"{wire_ts(min(stamps))},{wire_ts(max(stamps))}".encode()),
        ]
        out.append((b"[" + b",".join(r.json for r in chunk) + b"]", headers))
    return out


class CostingProcessor:
    """Validate, dedup and price batches of ``usage.events`` messages."""

    def __init__(
        self,
        catalog: PriceCatalog,
        dedup: DedupWindow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.dedup = dedup
        self.clock = clock

    def process(self, messages: Sequence[InMessage]) -> CostingResult:
        """Process one batch; never raises on bad input (bad items become dead letters)."""
        out = CostingResult()
        now = self.clock()
        fresh: list[UsageEvent] = []
        for msg in messages:
            good, bad = validate_payload(msg.value)
            out.events_in += len(good) + len(bad)
            for rej in bad:
                out.rejected[reject_reason(rej)] += 1
                out.dead_letters.append(
                    DeadLetter.build(
                        source_topic=msg.topic,
                        partition=msg.partition,
                        offset=msg.offset,
                        index=rej.index,
                        problems=rej.problems,
                        original=msg.value,
                        item=rej.raw,
                    )
                )
            for event in good:
                if self.dedup.add_new(event.event_id, now):
                    fresh.append(event)
                else:
                    out.duplicates += 1
        if not fresh:
            return out
        prices = self.catalog.price_many(
            [
                (
                    e.model,
                    e.provider or None,
                    TokenUsage.trusted(
                        e.input_tokens,
                        e.output_tokens,
                        e.cache_read_tokens,
                        e.cache_write_tokens,
                        e.reasoning_tokens,
                    ),
                    e.ts,
                )
                for e in fresh
            ]
        )
        costed_at = wire_ts(datetime.now(UTC))
        for event, price in zip(fresh, prices, strict=True):
            if not price.priced:
                out.unpriced += 1
            out.costed[event.tenant].append(
                CostedRecord(event.event_id, event.ts, costed_json(event, price, costed_at))
            )
        return out
