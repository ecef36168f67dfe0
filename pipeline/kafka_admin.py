"""Create the project's topics as ``schemas/topics.yaml`` declares them.

Faust only subscribes to topics; a topic created later (by broker auto-creation
on first produce) is not picked up until the next metadata refresh, and gets
the broker's default partitions and retention. So workers and tests create the
topics explicitly before anything runs.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.config import Settings
from pipeline.errors import ConfigError
from schemas.topics import topics


async def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create missing topics (name with the settings' prefix); return the ones created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except Exception as exc:
        await admin.close()
        raise ConfigError(
            f"TOKENPIPE_KAFKA_BOOTSTRAP ({settings.kafka_bootstrap}): no Kafka broker answered "
            f"within {timeout_s:.0f}s ({type(exc).__name__}: {exc}). "
            "Start one with `deploy/kafka/kafka.sh start`."
        ) from None
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topic(spec.name),
                num_partitions=spec.partitions,
                replication_factor=settings.topic_replication,
                topic_configs=spec.config,
            )
            for spec in topics().values()
            if settings.topic(spec.name) not in existing
        ]
        created: list[str] = []
        for topic in wanted:  # one by one: "already exists" from a racing worker is fine
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()
