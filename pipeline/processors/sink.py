"""The ClickHouse sink for ``usage.costed``: one insert per batch, offsets only after it.

Order of operations for every batch (the whole point of this module):

1. Take a batch of messages from ``usage.costed`` WITHOUT acking them
   (faust ``Stream.noack_take``: its ``finally`` does not ack, unlike ``take()``).
2. Drop ``event_id``s repeated inside the batch, then ask ClickHouse which of the
   remaining ids it already holds (a replay after a crash, or an upstream replay
   of the costing processor) and drop those too.
3. INSERT the rest in ONE statement (``JSONEachRow``: ClickHouse parses the JSON
   the costing processor wrote, so no per-row Python conversion happens here).
4. Only after the INSERT returned: ack the batch's messages. Faust commits acked
   offsets on its commit interval, so a committed offset always means "the rows
   are in ClickHouse".

If step 2 or 3 fails (ClickHouse down, timeout), nothing is acked: the writer
retries with exponential backoff until it succeeds or the worker stops. While it
retries it does not take new messages, so the consumer's buffers fill and faust
pauses fetching (backpressure) — nothing is dropped. If the worker dies at any
point, the unacked messages are read again by the partition's next owner, and
step 2 makes that replay count once (at-least-once delivery + an idempotent
write = exactly-once effect). Because the materialized views fire on every
insert, step 2 is what keeps the rollups exact too, not only ``usage_raw FINAL``.

Duplicates are only detected for the same ``event_id`` AND the same ``ts``
(a retried event carries its original timestamp); ``usage_raw`` is a
``ReplacingMergeTree`` on the same key as a second line of defence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pipeline.processors.costing import HEADER_IDS, HEADER_TS
from pipeline.store import merge_ranges
from schemas.usage import parse_wire_ts

log = logging.getLogger(__name__)

INSERT_SETTINGS: dict[str, Any] = {
    # The records carry fields usage_raw does not store (schema_version,
    # unpriced_reason, costed_at): skip them rather than failing the batch.
    "input_format_skip_unknown_fields": 1,
    "date_time_input_format": "best_effort",
    "input_format_null_as_default": 1,
    # Sort each inserted part without merging it on insert: ~3x faster with the
    # rollup MVs attached (measured in tests/store/bench_store.py).
    "optimize_on_insert": 0,
}


class SinkStore(Protocol):
    """What the sink needs from the store (``pipeline.store.Store`` provides it)."""

    def existing_event_ids(self, keys: Iterable[tuple[str, datetime, str]]) -> set[str]: ...

    def existing_event_ids_in_ranges(
        self, ranges: Sequence[tuple[str, datetime, datetime]], ids: Iterable[str]
    ) -> set[str]: ...

    def insert_json_each_row(
        self, table: str, body: bytes, settings: dict[str, Any] | None = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CostedMessage:
    """One ``usage.costed`` message: the value, its key (tenant) and its index headers.

    ``ids``/``ts_min``/``ts_max`` come from the costing processor's headers
    (``encode_costed``); a message from another producer has none and is parsed.
    """

    value: bytes
    tenant: str | None = None
    ids: tuple[str, ...] | None = None
    ts_min: str | None = None
    ts_max: str | None = None

    @classmethod
    def from_kafka(
        cls, value: bytes | None, key: bytes | None, headers: Iterable[tuple[str, bytes]] | None
    ) -> CostedMessage:
        h = dict(headers or ())
        ids: tuple[str, ...] | None = None
        ts_min = ts_max = None
        raw_ids, raw_ts = h.get(HEADER_IDS), h.get(HEADER_TS)
        if raw_ids is not None and raw_ts is not None and key:
            try:
                ids = tuple(json.loads(raw_ids))
                ts_min, _, ts_max = raw_ts.decode().partition(",")
            except (ValueError, UnicodeDecodeError):
                ids = None
        return cls(value or b"", key.decode(errors="replace") if key else None, ids, ts_min, ts_max)

    @property
    def indexed(self) -> bool:
        v = self.value
        return self.ids is not None and v[:1] == b"[" and v[-1:] == b"]"


@dataclass
class PreparedBatch:
    """A batch parsed and deduplicated within itself; ``records`` are ``CostedUsage`` dicts."""

    records: list[dict[str, Any]]
    duplicates_in_batch: int = 0
    malformed: int = 0
    event_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of one successful batch write."""

    inserted: int
    skipped_existing: int
    duplicates_in_batch: int
    attempts: int
    fast_path: bool = False


def prepare(values: Sequence[bytes]) -> PreparedBatch:
    """Parse message values (JSON arrays or single objects) and drop in-batch duplicates.

    A value that is not JSON cannot come from our costing processor; it is counted
    as ``malformed`` and skipped (logged), because blocking the partition on it
    forever would lose everything behind it.
    """
    seen: set[str] = set()
    out = PreparedBatch(records=[])
    for value in values:
        try:
            data = json.loads(value)
        except ValueError:
            out.malformed += 1
            log.error("usage.costed message is not JSON; skipped: %.200r", value)
            continue
        for rec in data if isinstance(data, list) else [data]:
            if not isinstance(rec, dict) or "event_id" not in rec or "ts" not in rec:
                out.malformed += 1
                continue
            key = rec["event_id"]
            if key in seen:
                out.duplicates_in_batch += 1
                continue
            seen.add(key)
            out.records.append(rec)
            out.event_ids.append(key)
    return out


def _write_indexed(
    store: SinkStore, table: str, messages: Sequence[CostedMessage], max_rows: int
) -> WriteResult | None:
    """Fast path: headers give ids and ts ranges; insert the values' bytes untouched.

    Returns None when the batch needs the parse path (a duplicate inside the batch
    or already in ClickHouse: only then are records parsed and filtered).
    """
    all_ids: list[str] = []
    for m in messages:
        all_ids.extend(m.ids or ())
    if len(set(all_ids)) != len(all_ids):
        return None
    # One query for the whole batch over its messages' (tenant, ts) windows: every
    # replayed row has its original tenant and ts, so it lies inside one of them.
    windows = merge_ranges(
        (m.tenant or "", parse_wire_ts(m.ts_min or ""), parse_wire_ts(m.ts_max or ""))
        for m in messages
    )
    if store.existing_event_ids_in_ranges(windows, all_ids):
        return None
    chunk: list[bytes] = []
    rows = 0
    for m in messages:
        n = len(m.ids or ())
        if chunk and rows + n > max_rows:
            store.insert_json_each_row(table, b"[" + b",".join(chunk) + b"]", INSERT_SETTINGS)
            chunk, rows = [], 0
        chunk.append(m.value[1:-1])
        rows += n
    if chunk:
        store.insert_json_each_row(table, b"[" + b",".join(chunk) + b"]", INSERT_SETTINGS)
    return WriteResult(len(all_ids), 0, 0, 1, fast_path=True)


def write_messages(
    store: SinkStore, table: str, messages: Sequence[CostedMessage], max_rows: int
) -> WriteResult:
    """Steps 2 and 3 for a batch of messages; blocking (run it in an executor thread).

    Indexed messages take the fast path; anything else (or any duplicate) is
    parsed, filtered and re-serialised by ``write_blocking``.
    """
    if messages and all(m.indexed for m in messages):
        result = _write_indexed(store, table, messages, max_rows)
        if result is not None:
            return result
    return write_blocking(store, table, prepare([m.value for m in messages]), max_rows)


def write_blocking(
    store: SinkStore, table: str, batch: PreparedBatch, max_rows: int
) -> WriteResult:
    """Steps 2 and 3 on parsed records: drop ids ClickHouse holds, insert in chunks.

    Blocking (clickhouse-connect is synchronous): call it from an executor thread.
    Raises whatever the store raises; the caller retries.
    """
    records = batch.records
    skipped = 0
    if records:
        existing = store.existing_event_ids(
            (r["tenant"], parse_wire_ts(r["ts"]), r["event_id"]) for r in records
        )
        if existing:
            before = len(records)
            records = [r for r in records if r["event_id"] not in existing]
            skipped = before - len(records)
    for start in range(0, len(records), max_rows):
        chunk = records[start : start + max_rows]
        store.insert_json_each_row(table, json.dumps(chunk).encode(), INSERT_SETTINGS)
    return WriteResult(len(records), skipped, batch.duplicates_in_batch, 1)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``initial * 2**n`` capped at ``maximum``."""

    initial: float = 0.2
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.maximum, self.initial * 2 ** max(0, attempt - 1)))


class BatchWriter:
    """Writes prepared batches with retries; acks only after success.

    ``write_and_ack`` returns only when the batch is in ClickHouse (then it calls
    ``ack``) or when ``should_stop()`` turns true (then it returns None and acks
    nothing). It never drops a batch.
    """

    def __init__(
        self,
        store: SinkStore,
        table: str,
        max_rows: int,
        executor: Executor | None = None,
        backoff: Backoff | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.max_rows = max_rows
        self.executor = executor
        self.backoff = backoff or Backoff()
        self.on_failure = on_failure

    async def write_and_ack(
        self,
        messages: Sequence[CostedMessage | bytes],
        ack: Callable[[], Awaitable[None]],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> WriteResult | None:
        batch = [m if isinstance(m, CostedMessage) else CostedMessage(m) for m in messages]
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await loop.run_in_executor(
                    self.executor, write_messages, self.store, self.table, batch, self.max_rows
                )
            except Exception as exc:  # any store failure: retry, never ack
                if self.on_failure is not None:
                    self.on_failure(exc)
                if should_stop():
                    log.warning("sink stopping with an unwritten batch; it stays unacked")
                    return None
                delay = self.backoff.delay(attempt)
                log.warning(
                    "ClickHouse insert failed (attempt %d, retry in %.1fs): %s", attempt, delay, exc
                )
                await asyncio.sleep(delay)
                continue
            await ack()
            return WriteResult(
                result.inserted,
                result.skipped_existing,
                result.duplicates_in_batch,
                attempt,
                result.fast_path,
            )
