"""Send synthetic demo traffic to ``usage.events`` (used by ``tokenpipe emit`` and ``demo``).

Events go as apps using the SDK send them: per-tenant JSON-array batches keyed by
tenant; malformed items (including bytes that are not JSON) go as single
messages, as a buggy producer would send them, so the DLQ path is exercised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from pipeline.config import Settings
from pipeline.demo import DemoConfig, DemoTraffic, encode_batch
from pipeline.kafka_admin import ensure_topics
from schemas.topics import USAGE_EVENTS


@dataclass
class EmitStats:
    """What was sent: valid events, exact resends, malformed items, Kafka messages."""

    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    messages: int = 0
    seconds: float = 0.0


async def emit_demo(
    settings: Settings,
    n: int,
    config: DemoConfig,
    rate: float | None = None,
    batch_size: int = 200,
    progress: Callable[[int], None] | None = None,
) -> EmitStats:
    """Produce ``n`` demo events (+ configured duplicates/malformed); ``rate`` in events/s."""
    await ensure_topics(settings)
    topic = settings.topic(USAGE_EVENTS)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=10,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    stats = EmitStats()
    pending: dict[str, list[object]] = {}
    futures: list[asyncio.Future[object]] = []
    started = time.monotonic()

    async def send(key: bytes | None, value: bytes) -> None:
        futures.append(await producer.send(topic, value=value, key=key))
        stats.messages += 1
        if len(futures) >= 500:
            await asyncio.gather(*futures)
            futures.clear()

    try:
        for kind, item in DemoTraffic(config).stream(n):
            if kind == "malformed":
                stats.malformed += 1
                raw = item if isinstance(item, bytes) else encode_batch([item])
                await send(None, raw)
                continue
            assert isinstance(item, dict)
            if kind == "duplicate":
                stats.duplicates += 1
            else:
                stats.events += 1
                if progress is not None:
                    progress(1)
            tenant = str(item["tenant"])
            batch = pending.setdefault(tenant, [])
            batch.append(item)
            if len(batch) >= batch_size:
                await send(tenant.encode(), encode_batch(batch))
                pending[tenant] = []
            if rate:
                ahead = stats.events / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        for tenant, batch in pending.items():
            if batch:
                await send(tenant.encode(), encode_batch(batch))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    stats.seconds = time.monotonic() - started
    return stats
