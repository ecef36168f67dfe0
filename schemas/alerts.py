"""Alert contracts: ``AlertEvent`` (what alert rules see), ``Anomaly``, ``WebhookDelivery``.

Every id here is deterministic where a replay must not create a second copy:
``AlertEvent.alert_id`` is a hash of what the alert is about (kind, tenant, scope
and a key such as the threshold and period), so the same crossing seen twice after
a restart is the same alert and is delivered once (it is the webhook
``Idempotency-Key``). ``Anomaly.anomaly_id`` is a hash of scope, metric and window
start. ``WebhookDelivery.delivery_id`` is unique per attempt: every attempt is a
separate fact worth keeping.

Money (``cost_usd`` values and baselines) is ``Decimal``; ratios and scores are
floats because they are unitless and only compared against thresholds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

AlertKind = Literal["budget_threshold", "anomaly", "spend_rate", "unpriced_cost", "dlq_rate"]
ALERT_KINDS: tuple[str, ...] = (
    "budget_threshold",
    "anomaly",
    "spend_rate",
    "unpriced_cost",
    "dlq_rate",
)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
AnomalyMetric = Literal["cost_usd", "tokens", "calls"]
DeliveryStatus = Literal["ok", "failed", "dead"]

# Scope dimensions an alert may carry (the usage dimensions plus metric/budget ids).
SCOPE_DIMS: tuple[str, ...] = (
    "tenant",
    "user",
    "team",
    "feature",
    "model",
    "provider",
    "api_key_id",
    "metric",
    "budget_id",
    "source_topic",
)


def _to_utc(v: datetime) -> datetime:
    return v.astimezone(UTC)


def stable_id(*parts: object) -> str:
    """A 32-hex-digit id derived from ``parts`` (JSON-encoded, so order and types matter)."""
    blob = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class AlertEvent(BaseModel):
    """A generic alert: what alert rules filter and what channels deliver.

    ``alert_id`` is the idempotency key; build events with ``AlertEvent.build`` so
    that it is derived from ``kind``, ``tenant``, ``scope`` and a caller ``key``
    (e.g. threshold and period) and never from wall-clock time.
    """

    model_config = ConfigDict(frozen=True)

    alert_id: str = Field(
        min_length=1, max_length=128, description="Deterministic idempotency key."
    )
    kind: AlertKind = Field(description="What raised the alert.")
    tenant: str = Field(max_length=256, description="Tenant the alert is about ('' = system-wide).")
    scope: dict[str, str] = Field(
        default_factory=dict, description="Scope dimensions, e.g. {'feature': 'chat'}."
    )
    severity: Severity = Field(default="warning", description="info | warning | critical.")
    title: str = Field(max_length=500, description="One-line summary.")
    text: str = Field(default="", description="Human-readable details.")
    data: dict[str, Any] = Field(
        default_factory=dict, description="Machine-readable details (value, threshold, …)."
    )
    ts: AwareDatetime = Field(description="Event time the alert refers to (UTC).")

    @field_validator("ts")
    @classmethod
    def _ts_utc(cls, v: datetime) -> datetime:
        return _to_utc(v)

    @classmethod
    def build(
        cls,
        *,
        kind: AlertKind,
        tenant: str,
        scope: dict[str, str] | None = None,
        severity: Severity = "warning",
        title: str,
        text: str = "",
        data: dict[str, Any] | None = None,
        ts: datetime,
        key: tuple[object, ...] = (),
    ) -> AlertEvent:
        """An event whose ``alert_id`` is ``stable_id(kind, tenant, scope, *key)``."""
        scope = dict(scope or {})
        alert_id = stable_id(kind, tenant, sorted(scope.items()), *key)
        return cls(
            alert_id=alert_id,
            kind=kind,
            tenant=tenant,
            scope=scope,
            severity=severity,
            title=title,
            text=text,
            data=dict(data or {}),
            ts=ts,
        )

    def dims(self) -> dict[str, str]:
        """The values rule filters look at: tenant, severity, kind, scope and id-like data."""
        ids = ("metric", "budget_id")
        out: dict[str, str] = {k: str(self.data[k]) for k in ids if k in self.data}
        out.update(self.scope)
        out["tenant"] = self.tenant
        out["severity"] = self.severity
        out["kind"] = self.kind
        return out


class Anomaly(BaseModel):
    """A window whose spend, tokens or calls broke away from the scope's baseline."""

    model_config = ConfigDict(frozen=True)

    anomaly_id: str = Field(description="stable_id(scope, metric, window_start).")
    scope: dict[str, str] = Field(description="Scope dimensions, always including 'tenant'.")
    metric: AnomalyMetric = Field(description="cost_usd | tokens | calls.")
    window_start: AwareDatetime = Field(description="Start of the anomalous window (UTC).")
    window_s: int = Field(default=60, gt=0, description="Window length in seconds.")
    value: Decimal = Field(description="The window's value.")
    baseline: Decimal = Field(description="Expected value per window (see docs/alerts.md).")
    score: float = Field(description="Robust z-score: (value - median) / (1.4826 * MAD).")
    ratio: float = Field(description="value / baseline.")
    detected_at: AwareDatetime = Field(description="When the detector saw it (UTC).")

    @field_validator("window_start", "detected_at")
    @classmethod
    def _times_utc(cls, v: datetime) -> datetime:
        return _to_utc(v)

    @staticmethod
    def make_id(scope: dict[str, str], metric: str, window_start: datetime) -> str:
        return stable_id("anomaly", sorted(scope.items()), metric, window_start.astimezone(UTC))

    def to_alert(self, severity: Severity = "warning") -> AlertEvent:
        """The ``AlertEvent`` rules see; its ``alert_id`` is the ``anomaly_id``."""
        tenant = self.scope.get("tenant", "")
        scope = {k: v for k, v in self.scope.items() if k != "tenant"}
        where = ", ".join(f"{k}={v}" for k, v in sorted(self.scope.items()))
        return AlertEvent(
            alert_id=self.anomaly_id,
            kind="anomaly",
            tenant=tenant,
            scope=scope,
            severity=severity,
            title=f"Anomalous {self.metric} for {where}: {self.ratio:.1f}× baseline",
            text=(
                f"{self.metric} was {self.value} in the {self.window_s}s window starting "
                f"{self.window_start.isoformat()} against a baseline of {self.baseline} "
                f"(ratio {self.ratio:.2f}, robust z {self.score:.1f})."
            ),
            data={
                "metric": self.metric,
                "value": str(self.value),
                "baseline": str(self.baseline),
                "ratio": self.ratio,
                "score": self.score,
                "window_start": self.window_start.isoformat(),
                "window_s": self.window_s,
            },
            ts=self.window_start,
        )


class WebhookDelivery(BaseModel):
    """One delivery attempt of one alert to one channel (every attempt is recorded).

    ``status``: ``ok`` (2xx), ``failed`` (will be retried) or ``dead`` (final
    failure: attempts exhausted or a non-retryable answer such as a 4xx).
    """

    model_config = ConfigDict(frozen=True)

    delivery_id: str = Field(description="Unique id of this attempt.")
    alert_id: str = Field(description="The alert delivered (Idempotency-Key).")
    channel: str = Field(description="Channel name from the rules file.")
    attempt: int = Field(ge=1, description="1-based attempt number.")
    status: DeliveryStatus = Field(description="ok | failed | dead.")
    http_status: int | None = Field(default=None, description="HTTP status, None on network error.")
    error: str = Field(default="", description="Why the attempt failed ('' when ok).")
    latency_ms: int = Field(ge=0, description="Time the attempt took.")
    ts: AwareDatetime = Field(description="When the attempt started (UTC).")

    @field_validator("ts")
    @classmethod
    def _ts_utc(cls, v: datetime) -> datetime:
        return _to_utc(v)
