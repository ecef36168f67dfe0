"""The local broker does what the pipeline relies on: keyed partitioning, transactions,
consumer-group offsets."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from .conftest import TopicFactory


async def drain(
    consumer: AIOKafkaConsumer, expected: int, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read until ``expected`` records arrived (or fail after ``timeout`` seconds)."""
    out: list[ConsumerRecord[bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < expected:
        left = deadline - loop.time()
        assert left > 0, f"got {len(out)} of {expected} records within {timeout}s"
        batches = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
        for records in batches.values():
            out.extend(records)
    return out


async def test_keyed_round_trip_across_partitions(
    kafka_bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("events", partitions=4)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent: dict[bytes, list[bytes]] = defaultdict(list)
        for i in range(200):
            key = f"tenant-{i % 20}".encode()
            value = f"{i}".encode()
            sent[key].append(value)
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        records = await drain(consumer, 200)
    finally:
        await consumer.stop()

    assert len(records) == 200
    got: dict[bytes, list[bytes]] = defaultdict(list)
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    for r in records:
        assert r.key is not None and r.value is not None
        got[r.key].append(r.value)
        partition_of[r.key].add(r.partition)
    assert got == sent  # all there, per-key order kept
    assert all(len(p) == 1 for p in partition_of.values())  # a key sticks to one partition
    assert len({p for ps in partition_of.values() for p in ps}) > 1  # keys spread out


async def test_transactional_producer_commit_and_abort(
    kafka_bootstrap: str, create_topic: TopicFactory, topic_prefix: str
) -> None:
    topic = await create_topic("txn", partitions=2)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic_prefix}txn-producer"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(5):
                await producer.send(topic, value=f"committed-{i}".encode(), key=b"k")
        await producer.begin_transaction()
        await producer.send(topic, value=b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, value=b"committed-last", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        records = await drain(consumer, 6)
        # nothing else is visible: the aborted record stays hidden
        more = await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()
    values = [r.value for r in records]
    assert values == [f"committed-{i}".encode() for i in range(5)] + [b"committed-last"]
    assert not any(more.values())


async def test_consume_transform_produce_commits_offsets_in_transaction(
    kafka_bootstrap: str, create_topic: TopicFactory, topic_prefix: str
) -> None:
    """The exactly-once pattern: output records and input offsets commit atomically."""
    source = await create_topic("in", partitions=1)
    sink = await create_topic("out", partitions=1)
    group = f"{topic_prefix}eos"

    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await plain.start()
    try:
        for i in range(10):
            await plain.send(source, value=str(i).encode())
        await plain.flush()
    finally:
        await plain.stop()

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic_prefix}eos-producer"
    )
    await consumer.start()
    await producer.start()
    try:
        records = await drain(consumer, 10)
        tp = TopicPartition(source, 0)
        async with producer.transaction():
            for r in records:
                assert r.value is not None
                await producer.send(sink, value=r.value * 2)
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
        # EndTxn returns before the coordinator has written the commit markers, so the
        # offsets become visible a moment later: poll.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while (committed := await consumer.committed(tp)) != 10 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert committed == 10
    finally:
        await producer.stop()
        await consumer.stop()

    reader = AIOKafkaConsumer(
        sink,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await reader.start()
    try:
        out = await drain(reader, 10)
    finally:
        await reader.stop()
    assert [r.value for r in out] == [str(i).encode() * 2 for i in range(10)]


async def test_consumer_group_resumes_from_committed_offset(
    kafka_bootstrap: str, create_topic: TopicFactory, topic_prefix: str
) -> None:
    topic = await create_topic("group", partitions=1)
    group = f"{topic_prefix}g"
    tp = TopicPartition(topic, 0)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()

    def make_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5,
        )

    first = make_consumer()
    await first.start()
    try:
        head = await drain(first, 8)
        last = head[7]
        await first.commit({tp: last.offset + 1})
        assert await first.committed(tp) == 8
    finally:
        await first.stop()

    second = make_consumer()
    await second.start()
    try:
        rest = await drain(second, 12)
    finally:
        await second.stop()
    assert [r.value for r in rest][:12] == [str(i).encode() for i in range(8, 20)]
