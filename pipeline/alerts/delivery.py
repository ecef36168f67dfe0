"""Alert delivery: signed generic webhooks and Slack, with retries, every attempt recorded.

Generic webhook request::

    POST <url>
    Content-Type: application/json
    X-Tokenpipe-Timestamp: <unix seconds>
    X-Tokenpipe-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    Idempotency-Key: <alert_id>
    X-Tokenpipe-Delivery: <delivery_id of this attempt>
    <body: the AlertEvent as JSON>

Receivers check it with ``verify_signature`` (constant-time compare, and a
timestamp tolerance against replays). Each attempt is signed afresh, so a retry
after a long backoff is not rejected as stale. Slack channels get the incoming
webhook format ``{"text": …, "blocks": […]}``.

Retries: on network errors (connect, timeout, …), 5xx and 429, with exponential
backoff and full jitter — the delay before attempt n+1 is uniform in
``[0, min(backoff_max_s, backoff_base_s * 2**(n-1))]``, raised to the server's
``Retry-After`` (capped at ``backoff_max_s``) when it sends one. Other 4xx and
3xx are not retried. After the last allowed attempt the alert is dead-lettered.

Every attempt produces one ``WebhookDelivery`` passed to ``record``: ``failed``
(will retry), ``ok``, or ``dead`` (final failure). A ``record`` that raises is
logged and counted (``record_errors``); it never changes what is delivered.

No duplicate delivery after a restart: ``DeliveredStore.has(alert_id, channel)``
is consulted before sending and ``mark`` is called as soon as the outcome is
final (``ok`` or ``dead``), before the final record. The worker backs the store
with ClickHouse (the ``webhook_deliveries`` rows with status ok/dead);
``InMemoryDeliveredStore`` is for tests and single-process use. Within one
process, concurrent deliveries of the same (alert, channel) are serialised, so
the second one sees the first one's mark.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from pipeline.alerts.rules import Channel
from schemas.alerts import AlertEvent, DeliveryStatus, WebhookDelivery

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tokenpipe-Signature"
TIMESTAMP_HEADER = "X-Tokenpipe-Timestamp"
DELIVERY_HEADER = "X-Tokenpipe-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "tokenpipe-alerts/1"

Recorder = Callable[[WebhookDelivery], Awaitable[None] | None]


# -- signatures -------------------------------------------------------------------------


def _as_text(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str, timestamp: str | int, body: bytes | str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``f"{timestamp}.{body}"``."""
    message = str(timestamp).encode("ascii") + b"." + _as_text(body)
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ``sign(secret, timestamp, body)`` and the timestamp
    is within ``tolerance_s`` of ``now`` (default: the current time).

    ``body`` must be the raw request body exactly as received.
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = sign(secret, str(timestamp).strip(), body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


# -- payloads ---------------------------------------------------------------------------


def webhook_body(alert: AlertEvent) -> bytes:
    """The generic webhook body: the ``AlertEvent`` as compact JSON (UTF-8)."""
    return json.dumps(
        alert.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


_SEVERITY_ICON = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}


def slack_payload(alert: AlertEvent) -> dict[str, Any]:
    """Slack incoming-webhook message: ``text`` (fallback) plus Block Kit ``blocks``."""
    icon = _SEVERITY_ICON[alert.severity]
    fields = [
        {"type": "mrkdwn", "text": f"*Kind*\n{alert.kind}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*Tenant*\n{alert.tenant or '(all)'}"},
    ]
    fields += [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in sorted(alert.scope.items())]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "fields": fields[:10]},  # Slack allows at most 10 fields
    ]
    if alert.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": alert.text[:3000]}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"{alert.ts.isoformat()} · alert `{alert.alert_id}`"}
            ],
        }
    )
    return {"text": f"{icon} {alert.title}", "blocks": blocks}


# -- idempotency store --------------------------------------------------------------------


class DeliveredStore(Protocol):
    """Remembers final outcomes so an alert is not delivered twice (across restarts)."""

    async def has(self, alert_id: str, channel: str) -> bool: ...

    async def mark(self, alert_id: str, channel: str, status: DeliveryStatus) -> None: ...


class InMemoryDeliveredStore:
    """``DeliveredStore`` in a dict (tests, single process). The worker uses ClickHouse."""

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], DeliveryStatus] = {}

    async def has(self, alert_id: str, channel: str) -> bool:
        return (alert_id, channel) in self.outcomes

    async def mark(self, alert_id: str, channel: str, status: DeliveryStatus) -> None:
        self.outcomes[(alert_id, channel)] = status


# -- delivery -----------------------------------------------------------------------------


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in ``[0, min(max_s, base_s * 2**(attempt-1))]`` (attempt >= 1)."""
    return rng.uniform(0.0, min(max_s, base_s * 2 ** (attempt - 1)))


class AlertDeliverer:
    """Delivers alerts to channels; see the module docstring for the contract.

    ``client``: a shared ``httpx.AsyncClient`` (one is created and owned if None;
    call ``aclose``). ``sleep`` and ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        store: DeliveredStore,
        record: Recorder,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._owns_client = client is None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self.record_errors = 0

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def dispatch(
        self, alert: AlertEvent, channels: Iterable[Channel]
    ) -> dict[str, list[WebhookDelivery]]:
        """Deliver ``alert`` to every channel concurrently; attempts per channel name."""
        chans = list(channels)
        results = await asyncio.gather(*(self.deliver(alert, c) for c in chans))
        return {c.name: r for c, r in zip(chans, results, strict=True)}

    async def deliver(self, alert: AlertEvent, channel: Channel) -> list[WebhookDelivery]:
        """Deliver ``alert`` to ``channel`` unless already delivered (then: ``[]``).

        Returns the attempts made; the last one is ``ok`` or ``dead``.
        """
        slot = (alert.alert_id, channel.name)
        lock, users = self._locks.get(slot, (asyncio.Lock(), 0))
        self._locks[slot] = (lock, users + 1)
        try:
            async with lock:
                if await self.store.has(alert.alert_id, channel.name):
                    return []
                return await self._attempts(alert, channel)
        finally:
            lock, users = self._locks[slot]
            if users == 1:
                del self._locks[slot]
            else:
                self._locks[slot] = (lock, users - 1)

    async def _attempts(self, alert: AlertEvent, channel: Channel) -> list[WebhookDelivery]:
        if channel.type == "slack":
            body = json.dumps(slack_payload(alert), ensure_ascii=False).encode("utf-8")
        else:
            body = webhook_body(alert)
        attempts: list[WebhookDelivery] = []
        for attempt in range(1, channel.max_attempts + 1):
            delivery_id = uuid.uuid4().hex
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            http_status: int | None = None
            error = ""
            retryable = False
            retry_after: float | None = None
            try:
                response = await self._client.post(
                    channel.url,
                    content=body,
                    headers=self._headers(alert, channel, body, delivery_id),
                    timeout=channel.timeout_s,
                )
                http_status = response.status_code
                if 200 <= http_status < 300:
                    status: DeliveryStatus = "ok"
                else:
                    retryable = _retryable(http_status)
                    retry_after = _retry_after(response) if retryable else None
                    error = f"HTTP {http_status}: {response.text[:200]}".strip()
                    status = "failed"
            except httpx.TransportError as exc:  # connect, read, timeouts, protocol
                retryable = True
                error = f"{type(exc).__name__}: {exc}"[:300]
                status = "failed"
            latency_ms = int((time.perf_counter() - t0) * 1000)
            final = status == "ok" or not retryable or attempt == channel.max_attempts
            if status == "failed" and final:
                status = "dead"
            record = WebhookDelivery(
                delivery_id=delivery_id,
                alert_id=alert.alert_id,
                channel=channel.name,
                attempt=attempt,
                status=status,
                http_status=http_status,
                error=error,
                latency_ms=latency_ms,
                ts=started,
            )
            attempts.append(record)
            if final:
                # Mark before recording: a crash after a send must not re-send.
                await self.store.mark(alert.alert_id, channel.name, status)
                await self._record(record)
                if status == "dead":
                    log.warning(
                        "alert %s dead-lettered for channel %s after %d attempt(s): %s",
                        alert.alert_id,
                        channel.name,
                        attempt,
                        error,
                    )
                return attempts
            await self._record(record)
            delay = backoff_delay(attempt, channel.backoff_base_s, channel.backoff_max_s, self._rng)
            if retry_after is not None:
                delay = max(delay, min(retry_after, channel.backoff_max_s))
            await self._sleep(delay)
        return attempts  # unreachable: max_attempts >= 1 and the last attempt is final

    def _headers(
        self, alert: AlertEvent, channel: Channel, body: bytes, delivery_id: str
    ) -> dict[str, str]:
        headers = dict(channel.headers)  # ours below win over the configured ones
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                IDEMPOTENCY_HEADER: alert.alert_id,
                DELIVERY_HEADER: delivery_id,
            }
        )
        if channel.type == "webhook" and channel.secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, body)
        return headers

    async def _record(self, delivery: WebhookDelivery) -> None:
        try:
            result = self.record(delivery)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.record_errors += 1
            log.exception("recording delivery %s failed", delivery.delivery_id)
