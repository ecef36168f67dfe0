"""The ClickHouse store: one ``clickhouse_connect`` client per DSN, and a thin ``Store``.

DSNs (the ``TOKENPIPE_CLICKHOUSE_DSN`` setting, ``Settings.dsn``):

* ``chdb:///abs/path`` — the ClickHouse engine embedded in this process (package
  ``chdb``, through clickhouse-connect's ``interface="chdb"`` client). The folder is
  created when missing. ``?database=NAME`` selects a database inside the path.
* ``http(s)://user:pass@host:8123/db`` — a ClickHouse server.

Both give the same ``clickhouse_connect.driver.Client`` API and the same SQL dialect.

chDB limits (measured with chdb 4.4 / engine 26.9, clickhouse-connect 1.12):

* One data path per *process*: while any client is open on ``/a``, opening ``/b``
  fails ("EmbeddedServer already initialized with path '/a'"). After every client
  on ``/a`` is closed, ``/b`` can be opened. Isolate tests with a database per test
  inside one shared path (``Store.open(dsn, database="t_xxx")``), not a path per test.
* One process per data path: a second process fails with "Cannot lock file
  …/status" (the engine prints that to stderr; the exception only says "Error
  initializing EmbeddedServer"), so ``connect`` checks the lock itself to say so.
* Any number of clients (chdb connection handles) may share the one engine in a
  process; each has its own session (``USE``, ``SET``) and a lock that serializes
  its calls. ``connect`` still caches one client per (DSN, database) so the process
  holds few handles, and reference-counts it so the last ``Store.close`` really
  closes it (which is what frees the engine for another path).
* Calls block (the engine runs in the calling thread): async code must run them in
  an executor.

Measured (``python -m tests.store.bench_store``; 2 cores shared with other jobs,
so ±30%):

* 100k rows via ``insert_arrow`` into ``usage_raw`` in 10 batches of 10k with the
  three rollup MVs attached: 140–185k rows/s with ``INSERT_SETTINGS``
  (``optimize_on_insert=0``); 35–55k rows/s with the default settings; ~180k rows/s
  into a copy of usage_raw without MVs. (Synthetic data with many distinct
  dimension combinations: the 1m rollup keeps ~60% as many rows as raw.)
* ``existing_event_ids`` for a 10k-event batch (1 s–100 s of events) against 1M rows:
  40–56 ms; a 10k replay batch spread over 2.8 h: 60–86 ms.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from pipeline.errors import ConfigError

DSN_SETTING = "TOKENPIPE_CLICKHOUSE_DSN"
#: Seconds to wait for an HTTP server to accept a connection before giving up.
CONNECT_TIMEOUT_S = 3.0

#: Settings for every insert. optimize_on_insert=0: the rollup MVs already GROUP BY
#: their key, so SummingMergeTree's pre-collapse of each inserted block is wasted
#: work (measured: inserts ~2x faster with the MVs attached). usage_raw keeps
#: in-block duplicates until a merge or FINAL, which the sink avoids anyway.
INSERT_SETTINGS: dict[str, Any] = {"optimize_on_insert": 0}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Dsn:
    """A parsed ClickHouse DSN. ``kind`` is ``chdb``, ``http`` or ``https``."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    database: str | None = None

    def redacted(self) -> str:
        """The DSN without its password, for messages."""
        if self.kind == "chdb":
            return f"chdb://{self.path}"
        auth = f"{self.username}@" if self.username else ""
        db = f"/{self.database}" if self.database else ""
        return f"{self.kind}://{auth}{self.host}:{self.port}{db}"


def _bad(dsn: str, why: str) -> ConfigError:
    shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", dsn)
    return ConfigError(f"{DSN_SETTING}={shown!r}: {why}")


def check_database_name(name: str) -> str:
    """Return ``name`` if it is a plain identifier (letters, digits, ``_``)."""
    if not _IDENT.match(name):
        raise ConfigError(f"database name {name!r}: use letters, digits and _ only")
    return name


def parse_dsn(dsn: str) -> Dsn:
    """Parse a DSN; raise ``ConfigError`` naming ``TOKENPIPE_CLICKHOUSE_DSN`` if invalid."""
    parts = urlsplit(dsn.strip())
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    database = query.pop("database", None) or None
    if parts.scheme == "chdb":
        if parts.netloc:
            raise _bad(dsn, "use chdb:///absolute/path (three slashes; host part not allowed)")
        path = unquote(parts.path)
        if not path or path == "/":
            raise _bad(dsn, "missing the data path: use chdb:///absolute/path")
        if not os.path.isabs(path):
            raise _bad(dsn, "the chdb data path must be absolute")
        if query:
            raise _bad(dsn, f"unknown options {sorted(query)} (only ?database=NAME)")
        if database and not _IDENT.match(database):
            raise _bad(dsn, f"database name {database!r}: use letters, digits and _ only")
        return Dsn(kind="chdb", path=os.path.normpath(path), database=database)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise _bad(dsn, "missing the server host: use http://user:pass@host:8123/db")
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError as exc:
            raise _bad(dsn, f"bad port: {exc}") from None
        path_db = unquote(parts.path.strip("/")) or None
        if path_db and "/" in path_db:
            raise _bad(dsn, "the path may only name a database: http://host:8123/db")
        if query:
            raise _bad(dsn, f"unknown options {sorted(query)} (only ?database=NAME)")
        db = path_db or database
        if db and not _IDENT.match(db):
            raise _bad(dsn, f"database name {db!r}: use letters, digits and _ only")
        return Dsn(
            kind=parts.scheme,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
            database=db,
        )
    if not parts.scheme:
        raise _bad(dsn, "missing scheme: use chdb:///abs/path or http(s)://host:8123/db")
    raise _bad(dsn, f"unknown scheme {parts.scheme!r}: use chdb://, http:// or https://")


def _status_lock_holder(path: str) -> str | None:
    """If another process holds the engine's ``status`` lock in ``path``, describe it.

    ClickHouse takes an exclusive ``flock`` on ``<path>/status`` and writes its PID
    there. Only call this when this process has no engine open on ``path``
    (an flock from this process would otherwise conflict with our own engine).
    """
    status = Path(path) / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            try:
                info = status.read_text(errors="replace").split("\n")
            except OSError:
                info = []
            pid = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("PID:")), "?")
            return f"pid {pid}"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _open_chdb(parsed: Dsn, dsn: str) -> Client:
    try:
        os.makedirs(parsed.path, exist_ok=True)
    except OSError as exc:
        raise _bad(dsn, f"cannot create the data folder: {exc.strerror or exc}") from None
    try:
        return clickhouse_connect.get_client(interface="chdb", path=parsed.path)
    except ClickHouseError as exc:
        text = str(exc)
        holder = _status_lock_holder(parsed.path)
        if holder is not None:
            why = (
                f"the data path is locked by another process ({holder}): chDB allows one "
                "process per data path; stop it, or ask the running worker over HTTP"
            )
        elif "already initialized with path" in text:
            other = re.search(r"with path '([^']*)'", text)
            why = (
                "this process already has the embedded engine open at "
                f"{other.group(1) if other else 'another path'}; chDB allows one data path "
                "per process (close every store on it first)"
            )
        else:
            why = f"cannot open the embedded ClickHouse: {text.splitlines()[0] if text else exc}"
        raise _bad(dsn, why) from None


def _open_http(parsed: Dsn, dsn: str, connect_timeout: float) -> Client:
    try:
        return clickhouse_connect.get_client(
            interface=parsed.kind,
            host=parsed.host,
            port=parsed.port,
            username=parsed.username,
            password=parsed.password,
            connect_timeout=connect_timeout,
            query_retries=0,
            # No HTTP session: a session forbids concurrent queries, and a cached
            # client is shared by threads (the sink's executor, the query endpoints).
            autogenerate_session_id=False,
        )
    except ClickHouseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _bad(dsn, f"cannot reach ClickHouse at {parsed.redacted()}: {first}") from None


def _use_database(client: Client, database: str, dsn: str) -> None:
    """Point ``client`` at ``database``, creating it when missing."""
    try:
        exists = client.command(
            "SELECT count() FROM system.databases WHERE name = {db:String}",
            parameters={"db": database},
        )
        if not exists or int(str(exists)) == 0:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        client.database = database
    except ClickHouseError as exc:
        raise _bad(dsn, f"cannot use database {database!r}: {str(exc).splitlines()[0]}") from None


@dataclass
class _Entry:
    client: Client
    refs: int


_CACHE: dict[tuple[str, str | None], _Entry] = {}
_CACHE_LOCK = threading.Lock()


def _key(parsed: Dsn, database: str | None) -> tuple[str, str | None]:
    base = parsed.redacted() if parsed.kind == "chdb" else f"{parsed.redacted()}|{parsed.password}"
    return (base, database)


def connect(
    dsn: str,
    database: str | None = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    private: bool = False,
) -> Client:
    """The process-wide client for ``dsn`` (and ``database``), opening it on first use.

    ``database`` overrides the DSN's database; it is created when missing. Clients
    are cached per (DSN, database) and reference-counted: every ``connect`` must be
    matched by one ``disconnect`` (``Store.close`` does it). Raises ``ConfigError``
    naming ``TOKENPIPE_CLICKHOUSE_DSN`` for a bad DSN, an unreachable server, or a
    chDB data path held by another process (or another path open in this one).

    ``private=True`` opens a client of its own (not cached; its own chDB session and
    lock), so long inserts on the shared client do not queue these calls behind them.
    """
    parsed = parse_dsn(dsn)
    db = check_database_name(database) if database else parsed.database
    key = _key(parsed, db)
    with _CACHE_LOCK:
        entry = None if private else _CACHE.get(key)
        if entry is not None:
            entry.refs += 1
            return entry.client
        if parsed.kind == "chdb":
            client = _open_chdb(parsed, dsn)
        else:
            client = _open_http(parsed, dsn, connect_timeout)
        if db:
            try:
                _use_database(client, db, dsn)
            except ConfigError:
                client.close()
                raise
        if not private:
            _CACHE[key] = _Entry(client, 1)
        return client


def disconnect(client: Client) -> None:
    """Release one ``connect`` reference; the client is closed when none remain."""
    with _CACHE_LOCK:
        for key, entry in list(_CACHE.items()):
            if entry.client is client:
                entry.refs -= 1
                if entry.refs <= 0:
                    del _CACHE[key]
                    client.close()
                return
    client.close()  # not cached (or already released): just close it


def close_all() -> None:
    """Close every cached client (frees the embedded engine for another path)."""
    with _CACHE_LOCK:
        entries = list(_CACHE.values())
        _CACHE.clear()
    for entry in entries:
        with contextlib.suppress(Exception):
            entry.client.close()


_PLAIN = re.compile(r"[A-Za-z0-9_.:@/+=-]*")


def string_array_literal(values: Sequence[str]) -> str:
    """A ClickHouse ``Array(String)`` literal of ``values``, safely quoted.

    Ids are almost always plain (UUIDs, provider ids): one regex pass over the
    joined text proves it and the literal is a single join. Anything else is
    escaped per value (backslash and quote). clickhouse-connect's generic binding
    escaped every value in Python and was ~8% of the worker's time (py-spy).
    """
    if _PLAIN.fullmatch("".join(values)):
        return "['" + "','".join(values) + "']"
    return (
        "["
        + ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
        + "]"
    )


def time_ranges(
    points: Iterable[tuple[str, datetime]], gap: timedelta = timedelta(seconds=60)
) -> list[tuple[str, datetime, datetime]]:
    """Cover (tenant, ts) points with few tight (tenant, from, to) windows.

    Points of a tenant closer than ``gap`` share a window; the result is what
    ``Store.existing_event_ids_in_ranges`` wants.
    """
    return merge_ranges([(tenant, ts, ts) for tenant, ts in points], gap)


def merge_ranges(
    ranges: Iterable[tuple[str, datetime, datetime]], gap: timedelta = timedelta(seconds=60)
) -> list[tuple[str, datetime, datetime]]:
    """Merge (tenant, from, to) windows of the same tenant that overlap or lie within ``gap``."""
    out: list[tuple[str, datetime, datetime]] = []
    for tenant, lo, hi in sorted(ranges):
        if out and out[-1][0] == tenant and lo <= out[-1][2] + gap:
            if hi > out[-1][2]:
                out[-1] = (tenant, out[-1][1], hi)
        else:
            out.append((tenant, lo, hi))
    return out


class Store:
    """Thin wrapper over a ``clickhouse_connect`` client: the pipeline's only way in.

    Methods block; call them off the event loop. Table names are relative to the
    store's database. ``close`` releases the shared client (see ``connect``).
    """

    def __init__(self, client: Client, *, dsn: str = "", database: str | None = None) -> None:
        self.client = client
        self.dsn = dsn
        self.database = database
        self._closed = False

    @classmethod
    def open(cls, dsn: str, database: str | None = None, *, private: bool = False) -> Store:
        """Open (or reuse) the client for ``dsn`` and wrap it (``private``: see ``connect``)."""
        client = connect(dsn, database, private=private)
        return cls(client, dsn=dsn, database=client.database or None)

    def session(self) -> Store:
        """A second Store on the same database with a client of its own.

        The worker reads (reports, API) through one and writes (the sink) through
        the other, so a query never waits for a batch insert to finish.
        """
        return Store.open(self.dsn, self.database, private=True)

    @property
    def is_embedded(self) -> bool:
        """True for a chdb:// store (in-process engine)."""
        return self.dsn.startswith("chdb:")

    def query_rows(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[tuple]:
        """Rows of ``sql`` as tuples. Bind values as ``{name:Type}`` with ``parameters``."""
        result = self.client.query(
            sql, parameters=dict(parameters or {}), settings=dict(settings or {})
        )
        return [tuple(r) for r in result.result_rows]

    def query_dicts(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts keyed by column name."""
        result = self.client.query(sql, parameters=dict(parameters or {}))
        return list(result.named_results())

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement (DDL, ALTER, ...) or a query returning one value."""
        return self.client.command(sql, parameters=dict(parameters) if parameters else None)

    def insert_arrow(self, table: str, data: Any) -> int:
        """Insert a ``pyarrow.Table`` (column names = table columns); return rows written."""
        self.client.insert_arrow(table, data, settings=INSERT_SETTINGS)
        return int(data.num_rows)

    def insert_rows(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]
    ) -> int:
        """Insert Python row tuples in ``column_names`` order; return rows written."""
        if not rows:
            return 0
        self.client.insert(
            table, list(rows), column_names=list(column_names), settings=INSERT_SETTINGS
        )
        return len(rows)

    def insert_json_each_row(
        self, table: str, body: bytes, settings: Mapping[str, Any] | None = None
    ) -> None:
        """Insert ``body`` (JSON objects, or one JSON array of them) as ``JSONEachRow``.

        ClickHouse parses the JSON itself: no per-row Python conversion (the sink's
        fast path). ``settings`` are ClickHouse settings for this insert.
        """
        self.client.raw_insert(table, None, body, settings=dict(settings or {}), fmt="JSONEachRow")

    def existing_event_ids(self, keys: Iterable[tuple[str, datetime, str]]) -> set[str]:
        """Which of a batch's ``(tenant, ts, event_id)`` are already in ``usage_raw``.

        Matches on tenant, the batch's ``[min ts, max ts]`` and event_id, so the
        primary key (tenant, ts, event_id) prunes to the batch's tenants and time
        span before event_ids are compared. A replay has the same ts as the
        original, so the window is exact for replays. The sink calls this before
        each insert so every event_id reaches usage_raw (and the rollup MVs) once.
        """
        items = list(keys)
        if not items:
            return set()
        return self.existing_event_ids_in_ranges(
            time_ranges((t, ts) for t, ts, _ in items), [e for _, _, e in items]
        )

    def existing_event_ids_in_ranges(
        self, ranges: Sequence[tuple[str, datetime, datetime]], ids: Iterable[str]
    ) -> set[str]:
        """Which of ``ids`` are in ``usage_raw`` inside any of the (tenant, from, to) ranges.

        Each range becomes ``tenant = t AND ts BETWEEN a AND b``; OR-ed together they let
        the primary key (tenant, ts, event_id) read only the granules of those windows,
        so the check costs about the batch's size, not the table's (a batch of a
        backlog spans hours; its messages' windows are seconds wide).
        """
        id_list = sorted(set(ids))
        if not id_list or not ranges:
            return set()
        params: dict[str, Any] = {}
        conds = []
        for i, (tenant, lo, hi) in enumerate(ranges):
            params[f"t{i}"], params[f"a{i}"], params[f"b{i}"] = tenant, lo, hi
            conds.append(
                f"(tenant = {{t{i}:String}} AND ts >= {{a{i}:DateTime64(3, 'UTC')}}"
                f" AND ts <= {{b{i}:DateTime64(3, 'UTC')}})"
            )
        rows = self.query_rows(
            "SELECT DISTINCT event_id FROM usage_raw WHERE (" + " OR ".join(conds) + ")"
            " AND event_id IN " + string_array_literal(id_list),
            params,
            # the id list is inline: a 10k-row batch is ~400 KB of SQL (default limit 256 KiB)
            settings={"max_query_size": 64 * 1024 * 1024},
        )
        return {r[0] for r in rows}

    def close(self) -> None:
        """Release the client (idempotent)."""
        if not self._closed:
            self._closed = True
            disconnect(self.client)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
