"""ClickHouse migrations: numbered SQL files in ``schemas/clickhouse``, applied in order.

A migration is ``NNNN_name.sql``: statements separated by lines holding only ``;``.
Full-line ``--`` comments are kept in the file (they document the schema) and
left out of what runs. Placeholders ``{name}`` (no type, unlike ClickHouse query
parameters ``{name:Type}``) are rendered from settings — ``{raw_ttl_days}``.

Bookkeeping lives in the store's database:

* ``schema_migrations (version, name, checksum, applied_at)`` — one row per applied
  migration. The checksum is the SHA-256 of the file as written (placeholders
  unrendered), so changing a setting does not "change" a migration.
* ``schema_parameters (name, value, applied_at)`` — the value each placeholder had
  when last applied. When a setting differs, ``apply`` runs that parameter's
  update statements (``raw_ttl_days`` → ``ALTER TABLE usage_raw MODIFY TTL``) and
  records the new value, so the setting stays configurable after creation.

``apply`` never guesses: a recorded migration whose file changed or vanished, a
gap in the recorded versions, or a bookkeeping table of another shape raise
``ConfigError`` saying the migration table is in an unknown state and what differs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

from pipeline.errors import ConfigError
from pipeline.store import Store

MIGRATIONS_TABLE = "schema_migrations"
PARAMETERS_TABLE = "schema_parameters"

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_SEPARATOR = re.compile(r"^[ \t]*;[ \t]*$", re.MULTILINE)

#: Default placeholder values (the defaults of the matching settings).
DEFAULT_PARAMETERS: dict[str, str] = {"raw_ttl_days": "90"}

#: Statements that bring an existing schema in line with a changed parameter.
PARAMETER_UPDATES: dict[str, tuple[str, ...]] = {
    "raw_ttl_days": (
        "ALTER TABLE usage_raw MODIFY TTL toDateTime(ts) + INTERVAL {raw_ttl_days} DAY",
    ),
}

_BOOKKEEPING_DDL = {
    MIGRATIONS_TABLE: (
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    ),
    PARAMETERS_TABLE: (
        f"CREATE TABLE IF NOT EXISTS {PARAMETERS_TABLE} (name String, value String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree(applied_at) ORDER BY name"
    ),
}
_BOOKKEEPING_COLUMNS = {
    MIGRATIONS_TABLE: [
        ("version", "UInt32"),
        ("name", "String"),
        ("checksum", "String"),
        ("applied_at", "DateTime64(3, 'UTC')"),
    ],
    PARAMETERS_TABLE: [
        ("name", "String"),
        ("value", "String"),
        ("applied_at", "DateTime64(3, 'UTC')"),
    ],
}


@dataclass(frozen=True)
class Migration:
    """One migration file: ``version`` and ``name`` come from ``NNNN_name.sql``."""

    version: int
    name: str
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall(_strip_comments(self.sql)))

    def statements(self, parameters: Mapping[str, str]) -> list[str]:
        """The rendered statements, comments removed, in file order."""
        out = []
        for chunk in _SEPARATOR.split(self.sql):
            body = _strip_comments(chunk).strip()
            if body:
                out.append(render(body, parameters))
        return out


@dataclass
class Applied:
    """What ``apply`` ran (or would run): a migration, or a parameter update (version None)."""

    version: int | None
    name: str
    statements: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Pending migrations and parameter changes, in the order ``apply`` runs them."""

    migrations: list[Migration]
    parameter_updates: dict[str, tuple[str | None, str]]  # name → (recorded, desired)

    @property
    def empty(self) -> bool:
        return not self.migrations and not self.parameter_updates


def _strip_comments(sql: str) -> str:
    return "\n".join(ln for ln in sql.splitlines() if not ln.lstrip().startswith("--"))


def render(sql: str, parameters: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders; a placeholder without a value is an error."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in parameters:
            raise ConfigError(f"migration placeholder {{{name}}} has no value")
        return str(parameters[name])

    return _PLACEHOLDER.sub(sub, sql)


def checksum(sql: str) -> str:
    """SHA-256 of a migration's text with line endings normalized."""
    return hashlib.sha256(sql.replace("\r\n", "\n").encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Every ``schemas/clickhouse/NNNN_name.sql`` of the installed package, by version."""
    folder = resources.files("schemas").joinpath("clickhouse")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _FILE.match(entry.name)
        if not m:
            raise ConfigError(f"schemas/clickhouse/{entry.name}: name must be NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise ConfigError(f"schemas/clickhouse: two migrations numbered {version:04d}")
        sql = entry.read_text(encoding="utf-8")
        found[version] = Migration(version, m.group(2), sql, checksum(sql))
    return [found[v] for v in sorted(found)]


def parameters_from_settings() -> dict[str, str]:
    """Placeholder values from the current settings (env, config file)."""
    from pipeline.config import load_settings

    return {"raw_ttl_days": str(load_settings().raw_ttl_days)}


def _unknown_state(what: str) -> ConfigError:
    return ConfigError(
        f"the migration table {MIGRATIONS_TABLE} is in an unknown state: {what}; "
        "refusing to guess — fix the database or the migration files by hand"
    )


def _table_exists(store: Store, table: str) -> bool:
    n = store.command(
        "SELECT count() FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    )
    return int(str(n)) > 0


def _check_shape(store: Store, table: str) -> None:
    cols = store.query_rows(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
        " AND table = {t:String} ORDER BY position",
        {"t": table},
    )
    expected = _BOOKKEEPING_COLUMNS[table]
    if [tuple(c) for c in cols] != expected:
        raise _unknown_state(f"table {table} has columns {cols}, expected {expected}")


def _recorded(store: Store) -> tuple[dict[int, tuple[str, str]], dict[str, str]]:
    """Recorded migrations (version → (name, checksum)) and parameters (name → value)."""
    migrations: dict[int, tuple[str, str]] = {}
    params: dict[str, str] = {}
    if _table_exists(store, MIGRATIONS_TABLE):
        _check_shape(store, MIGRATIONS_TABLE)
        for version, name, digest in store.query_rows(
            f"SELECT version, name, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"
        ):
            if version in migrations:
                raise _unknown_state(f"version {version:04d} is recorded twice")
            migrations[int(version)] = (name, digest)
    if _table_exists(store, PARAMETERS_TABLE):
        _check_shape(store, PARAMETERS_TABLE)
        for name, value in store.query_rows(
            f"SELECT name, value FROM {PARAMETERS_TABLE} FINAL ORDER BY name"
        ):
            params[name] = value
    return migrations, params


def plan(store: Store, parameters: Mapping[str, str] | None = None) -> Plan:
    """Compare the files with what ``store`` recorded; raise ``ConfigError`` on drift."""
    params = dict(DEFAULT_PARAMETERS if parameters is None else parameters)
    migrations = load_migrations()
    by_version = {m.version: m for m in migrations}
    recorded, recorded_params = _recorded(store)
    for version, (name, digest) in sorted(recorded.items()):
        m = by_version.get(version)
        if m is None:
            raise _unknown_state(
                f"version {version:04d} ({name}) is recorded but no file "
                f"{version:04d}_*.sql exists in schemas/clickhouse"
            )
        if m.name != name:
            raise _unknown_state(
                f"version {version:04d} is recorded as {name!r}, file says {m.name!r}"
            )
        if m.checksum != digest:
            raise _unknown_state(
                f"{m.filename} changed after it was applied (recorded checksum "
                f"{digest[:12]}…, file {m.checksum[:12]}…); add a new migration instead"
            )
    pending = [m for m in migrations if m.version not in recorded]
    if pending and recorded and pending[0].version < max(recorded):
        raise _unknown_state(
            f"{pending[0].filename} is not applied but later version {max(recorded):04d} is"
        )
    # A parameter needs an update when a migration using it is already applied
    # and the recorded value differs from the desired one (missing = unknown).
    applied_placeholders: set[str] = set()
    for m in migrations:
        if m.version in recorded:
            applied_placeholders |= m.placeholders
    updates: dict[str, tuple[str | None, str]] = {}
    for name in sorted(applied_placeholders):
        if name not in params:
            raise ConfigError(f"migration placeholder {{{name}}} has no value")
        desired = str(params[name])
        if recorded_params.get(name) != desired:
            if name not in PARAMETER_UPDATES:
                raise ConfigError(
                    f"parameter {name} changed ({recorded_params.get(name)} → {desired}) "
                    "but has no update statements"
                )
            updates[name] = (recorded_params.get(name), desired)
    return Plan(pending, updates)


def _record_parameters(store: Store, values: Mapping[str, str]) -> None:
    if values:
        store.insert_rows(PARAMETERS_TABLE, [(k, v) for k, v in values.items()], ["name", "value"])


def apply(
    store: Store, dry_run: bool = False, parameters: Mapping[str, str] | None = None
) -> list[Applied]:
    """Apply pending migrations in order and re-apply changed parameters.

    Returns what ran (or, with ``dry_run``, what would run — nothing is changed,
    not even the bookkeeping tables). Re-running is a no-op. ``parameters``
    defaults to ``DEFAULT_PARAMETERS``; the CLI passes ``parameters_from_settings()``.
    """
    params = dict(DEFAULT_PARAMETERS if parameters is None else parameters)
    todo = plan(store, params)
    done: list[Applied] = []
    if not dry_run:
        for table in (MIGRATIONS_TABLE, PARAMETERS_TABLE):
            store.command(_BOOKKEEPING_DDL[table])
            _check_shape(store, table)
    for m in todo.migrations:
        statements = m.statements(params)
        if not dry_run:
            for stmt in statements:
                store.command(stmt)
            store.insert_rows(
                MIGRATIONS_TABLE, [(m.version, m.name, m.checksum)], ["version", "name", "checksum"]
            )
            _record_parameters(store, {p: str(params[p]) for p in sorted(m.placeholders)})
        done.append(Applied(m.version, m.name, statements))
    for name, (old, new) in todo.parameter_updates.items():
        statements = [render(s, {name: new}) for s in PARAMETER_UPDATES[name]]
        if not dry_run:
            for stmt in statements:
                store.command(stmt)
            _record_parameters(store, {name: new})
        done.append(Applied(None, f"{name}: {old if old is not None else '?'} → {new}", statements))
    return done


# ---------------------------------------------------------------------------
# The declared schema: what the migrations must produce (checked by
# tests/store/test_migrations.py against system.columns / system.tables).

_DIMENSIONS = ("tenant", "user", "team", "feature", "provider", "model", "api_key_id")
_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_COSTS = (
    "cost_usd",
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
)
_LC = "LowCardinality(String)"
_TS = "DateTime64(3, 'UTC')"

_RAW_COLUMNS: list[tuple[str, str]] = [
    ("event_id", "String"),
    ("ts", _TS),
    *[(d, _LC) for d in ("tenant", "user", "team", "feature", "api_key_id", "provider", "model")],
    *[(t, "UInt64") for t in _TOKENS],
    *[(c, "Decimal(18, 9)") for c in _COSTS],
    ("priced", "Bool"),
    ("price_source", _LC),
    ("price_version", _LC),
    ("request_id", "String"),
    ("reservation_id", "String"),
    ("latency_ms", "UInt32"),
    ("status", _LC),
    ("attributes", "Map(String, String)"),
    ("ingested_at", _TS),
]

_ROLLUP_COLUMNS: list[tuple[str, str]] = [
    ("bucket", "DateTime('UTC')"),
    *[(d, _LC) for d in _DIMENSIONS],
    *[(c, "UInt64") for c in ("calls", "priced_calls", "unpriced_calls", "error_calls")],
    *[(t, "UInt64") for t in _TOKENS],
    *[(c, "Decimal(38, 9)") for c in _COSTS],
]
_ROLLUP_KEY = "tenant, bucket, user, team, feature, provider, model, api_key_id"


@dataclass(frozen=True)
class TableSpec:
    """A declared table: engine name, sorting key as system.tables shows it, columns."""

    engine: str
    sorting_key: str
    columns: list[tuple[str, str]]


DECLARED_TABLES: dict[str, TableSpec] = {
    "usage_raw": TableSpec("ReplacingMergeTree", "tenant, ts, event_id", _RAW_COLUMNS),
    **{
        f"usage_rollup_{g}": TableSpec("SummingMergeTree", _ROLLUP_KEY, _ROLLUP_COLUMNS)
        for g in ("1m", "1h", "1d")
    },
    "budgets": TableSpec(
        "ReplacingMergeTree",
        "id",
        [
            ("id", "String"),
            ("version", "UInt64"),
            ("name", "String"),
            ("scope", "Map(String, String)"),
            ("period", _LC),
            ("unit", _LC),
            ("limit", "Decimal(38, 9)"),
            ("mode", _LC),
            ("definition", "String"),
            ("deleted", "UInt8"),
            ("updated_at", _TS),
        ],
    ),
    "alerts": TableSpec(
        "ReplacingMergeTree",
        "alert_id",
        [
            ("alert_id", "String"),
            ("kind", _LC),
            ("tenant", _LC),
            ("scope", "Map(String, String)"),
            ("severity", _LC),
            ("title", "String"),
            ("text", "String"),
            ("data", "String"),
            ("budget_id", "String"),
            ("ts", _TS),
            ("inserted_at", _TS),
        ],
    ),
    "anomalies": TableSpec(
        "ReplacingMergeTree",
        "anomaly_id",
        [
            ("anomaly_id", "String"),
            ("scope", "Map(String, String)"),
            ("metric", _LC),
            ("window_start", _TS),
            ("window_s", "UInt32"),
            ("value", "Decimal(38, 9)"),
            ("baseline", "Decimal(38, 9)"),
            ("score", "Float64"),
            ("ratio", "Float64"),
            ("detected_at", _TS),
        ],
    ),
    "webhook_deliveries": TableSpec(
        "MergeTree",
        "alert_id, channel, ts",
        [
            ("delivery_id", "String"),
            ("alert_id", "String"),
            ("channel", _LC),
            ("attempt", "UInt16"),
            ("status", _LC),
            ("http_status", "Nullable(UInt16)"),
            ("error", "String"),
            ("latency_ms", "UInt32"),
            ("ts", _TS),
        ],
    ),
}

#: table → ordered (column, type): the schema the migrations must produce.
DECLARED_SCHEMA: dict[str, list[tuple[str, str]]] = {
    name: spec.columns for name, spec in DECLARED_TABLES.items()
}

#: Materialized views → their target table.
DECLARED_VIEWS: dict[str, str] = {
    f"usage_rollup_{g}_mv": f"usage_rollup_{g}" for g in ("1m", "1h", "1d")
}
