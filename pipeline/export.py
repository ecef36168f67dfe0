"""Export ``usage_raw`` rows of a time range to CSV or Parquet, streaming.

Rows are read with ``query_arrow_stream`` (Arrow record batches of about
``BLOCK_ROWS`` rows) and written batch by batch, so memory stays bounded by one
batch whatever the range. Order: ``tenant, ts, event_id`` (the table's key, so
ClickHouse reads in index order).

Column types: Parquet keeps the Arrow types (Decimal128(18, 9) money, UTC
millisecond timestamps, ``attributes`` as a map). CSV cannot hold a map, so
``attributes`` is written as a JSON object string; money is written as exact
decimal text.

Embedded store (``chdb://``): chDB allows one process per data path, so the
export opens the store itself and therefore needs the worker stopped (the
error says so). With a ClickHouse server DSN it runs beside the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipeline.migrate import DECLARED_SCHEMA

FORMATS = ("csv", "parquet")
BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class ExportQuery:
    """Half-open range [start, end) and an optional tenant."""

    start: datetime
    end: datetime
    tenant: str | None = None


def _select(fmt: str) -> str:
    cols = []
    for name, _ in DECLARED_SCHEMA["usage_raw"]:
        if name == "attributes" and fmt == "csv":
            cols.append("toJSONString(attributes) AS attributes")
        else:
            cols.append(f"`{name}`")
    return ", ".join(cols)


def _batches(store: Any, q: ExportQuery, fmt: str) -> Iterator[pa.RecordBatch]:
    where = "ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')}"
    params: dict[str, Any] = {"start": q.start, "end": q.end}
    if q.tenant:
        where += " AND tenant = {tenant:String}"
        params["tenant"] = q.tenant
    sql = f"SELECT {_select(fmt)} FROM usage_raw WHERE {where} ORDER BY tenant, ts, event_id"
    with store.client.query_arrow_stream(
        sql, parameters=params, settings={"max_block_size": BLOCK_ROWS}
    ) as stream:
        yield from stream


def export(store: Any, q: ExportQuery, fmt: str, out: Path | BinaryIO) -> int:
    """Write the rows of ``q`` to ``out`` as ``fmt``; return the number of rows.

    An empty range still writes a valid file (CSV header / Parquet schema only).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    sink: Any = str(out) if isinstance(out, Path) else out
    rows = 0
    writer: Any = None
    try:
        for batch in _batches(store, q, fmt):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = _open_writer(fmt, sink, batch.schema)
            writer.write_batch(batch) if fmt == "parquet" else writer.write(batch)
            rows += batch.num_rows
        if writer is None:  # no rows: still a well-formed file with the schema
            writer = _open_writer(fmt, sink, _empty_schema(store, fmt))
    finally:
        if writer is not None:
            writer.close()
    return rows


def _open_writer(fmt: str, sink: Any, schema: pa.Schema) -> Any:
    if fmt == "parquet":
        return pq.ParquetWriter(sink, schema, compression="zstd")
    return pa_csv.CSVWriter(sink, schema)


def _empty_schema(store: Any, fmt: str) -> pa.Schema:
    table = store.client.query_arrow(f"SELECT {_select(fmt)} FROM usage_raw LIMIT 0")
    return table.schema
