"""Settings: one typed object, read from environment variables and an optional YAML file.

Precedence (highest first): explicit overrides passed by the caller (CLI flags),
environment variables ``TOKENPIPE_<FIELD>``, the YAML file named by
``TOKENPIPE_CONFIG`` (or passed as ``config_file``), then the defaults below.
A bad value stops start-up with a ``ConfigError`` naming the setting; nothing
runs on a half-valid configuration. The README's settings table is generated
from ``Settings.model_fields`` (see ``settings_table``), so it cannot drift.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import ConfigError

ENV_PREFIX = "TOKENPIPE_"


def default_data_dir() -> Path:
    """``./var`` under the current directory: where the embedded store keeps its files."""
    return Path.cwd() / "var"


def saved_catalog_path(data_dir: Path) -> Path:
    """Where ``tokenpipe prices update`` saves a refreshed catalog under ``data_dir``."""
    return data_dir / "prices" / "genai-prices.json"


class Settings(BaseModel):
    """Every setting of tokenpipe. Field descriptions become the README table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for local state: embedded ClickHouse data, broker data, faust tables.",
    )
    clickhouse_dsn: str = Field(
        default="",
        description="ClickHouse DSN: `chdb:///abs/path` (embedded) or "
        "`http(s)://user:pass@host:8123/db`. Empty means `chdb://<data_dir>/clickhouse`.",
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated host:port."
    )
    topic_replication: int = Field(
        default=1, ge=1, le=10, description="Replication factor of topics tokenpipe creates."
    )
    topic_prefix: str = Field(
        default="", description="Prefix added to every topic name (isolates tests and tenants)."
    )
    raw_ttl_days: int = Field(
        default=90, ge=1, le=36500, description="Days `usage_raw` rows are kept (ClickHouse TTL)."
    )
    price_overrides: Path | None = Field(
        default=None, description="YAML file of local price overrides and model aliases."
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="YAML of API-key SHA-256 hashes → tenant or `*` (admin) for the query API; "
        "unset: query endpoints answer loopback clients only.",
    )
    alert_rules: Path | None = Field(
        default=None,
        description="YAML alert rules (webhook/Slack channels); unset: alerts are recorded "
        "in ClickHouse and on the alerts topic but not delivered.",
    )
    price_catalog: Path | None = Field(
        default=None,
        description="genai-prices data.json to price with; unset: the file `tokenpipe prices "
        "update` saved in <data_dir>/prices, if any, else the snapshot bundled with genai-prices.",
    )
    batch_max_rows: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Sink batch: flush at this many rows."
    )
    batch_max_seconds: float = Field(
        default=0.5, gt=0, le=60, description="Sink batch: flush when the oldest row is this old."
    )
    dedup_horizon_seconds: int = Field(
        default=3600, ge=0, description="Stream dedup on `event_id` remembers ids this long."
    )
    web_host: str = Field(default="127.0.0.1", description="Worker HTTP bind address.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="Worker HTTP port.")
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn_scheme(cls, v: str) -> str:
        if v and not v.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        return v

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, v: str) -> str:
        for part in v.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{part!r} is not host:port")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return v.lower()

    @property
    def dsn(self) -> str:
        """The effective ClickHouse DSN (the embedded default when none is set)."""
        return self.clickhouse_dsn or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    def catalog_file(self) -> Path | None:
        """The price catalog file to use (see ``price_catalog``), or None for the bundled one."""
        if self.price_catalog is not None:
            return self.price_catalog
        saved = saved_catalog_path(self.data_dir)
        return saved if saved.is_file() else None

    def topic(self, name: str) -> str:
        """The full name of a logical topic (``usage.events`` → with prefix)."""
        return f"{self.topic_prefix}{name}"


def _from_env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            out[name] = raw
    return out


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build ``Settings`` from file, environment and overrides; raise ``ConfigError`` if invalid."""
    values: dict[str, Any] = {}
    path = config_file or (Path(p) if (p := os.environ.get(ENV_PREFIX + "CONFIG")) else None)
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping of settings")
        values.update(loaded)
    values.update(_from_env())
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            problems.append(f"{ENV_PREFIX}{field.upper()} ({field}): {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None


def settings_table() -> str:
    """Markdown table of every setting: env var, config key, default, meaning."""
    rows = ["| env var | config key | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = "./var" if name == "data_dir" else field.default
        rows.append(
            f"| `{ENV_PREFIX}{name.upper()}` | `{name}` | `{default}` | {field.description} |"
        )
    return "\n".join(rows)
