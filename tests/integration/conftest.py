"""Fixtures for tests that need a real Kafka broker.

- ``kafka_bootstrap`` (session): ``"host:port"`` of a broker that answers. Uses the broker at
  ``$TOKENPIPE_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:$KAFKA_PORT``, default port 9092) when
  it answers; otherwise starts one there with ``deploy/kafka/kafka.sh start`` and stops it at
  the end of the session (only if this session started it).
- ``topic_prefix`` (function): a unique ``"t-<8 hex>-"`` prefix for the test's topics.
- ``create_topic`` (function): ``await create_topic("orders", partitions=4)`` creates
  ``<topic_prefix>orders`` through ``AIOKafkaAdminClient``, waits until every partition has
  a leader and returns the full name; the topics are deleted after the test.

Every test under ``tests/integration`` is marked ``integration`` (and gets a 120 s timeout
unless it sets its own ``timeout`` mark).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session: only touch ours.
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(120))


def bootstrap_address() -> str:
    """The broker address the tests use: $TOKENPIPE_KAFKA_BOOTSTRAP or 127.0.0.1:$KAFKA_PORT."""
    env = os.environ.get("TOKENPIPE_KAFKA_BOOTSTRAP")
    if env:
        return env.split(",")[0].strip()
    return f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when ``bootstrap`` answers a Kafka Metadata (v4) request listing >= 1 broker.

    Stdlib only (same probe as kafka.sh), so no event loop or client start-up is needed.
    """
    host, _, port = bootstrap.rpartition(":")
    client_id = b"tokenpipe-tests"
    req = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(req)) + req)
            buf = b""
            while len(buf) < 16:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                buf += chunk
    except (OSError, ValueError):
        return False
    corr, _throttle, nbrokers = struct.unpack(">iii", buf[4:16])
    return corr == 7 and nbrokers >= 1


def _kafka_sh(command: str, port: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KAFKA_PORT=port)
    return subprocess.run(
        ["bash", str(KAFKA_SH), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    bootstrap = bootstrap_address()
    if broker_answers(bootstrap):
        yield bootstrap
        return
    host, _, port = bootstrap.rpartition(":")
    if host not in LOCAL_HOSTS:
        pytest.fail(f"Kafka at {bootstrap} does not answer (not local, so not starting one)")
    proc = _kafka_sh("start", port)
    if proc.returncode != 0:
        pytest.fail(
            f"could not start Kafka on port {port} with {KAFKA_SH}:\n{proc.stdout}{proc.stderr}"
        )
    # kafka.sh start is idempotent: another session may have won the race and started it.
    started_here = "already running" not in proc.stdout
    try:
        yield bootstrap
    finally:
        if started_here:
            _kafka_sh("stop", port)


@pytest.fixture
def topic_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}-"


class TopicFactory:
    """``await create_topic(name, partitions=4, config=None) -> full topic name``."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.created: list[str] = []
        self._admin: AIOKafkaAdminClient | None = None

    async def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            self._admin = admin
        return self._admin

    async def __call__(
        self,
        name: str,
        partitions: int = 4,
        config: dict[str, str] | None = None,
        timeout: float = 15.0,
    ) -> str:
        full = f"{self.prefix}{name}"
        admin = await self.admin()
        await admin.create_topics(
            [
                NewTopic(
                    name=full,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs=config or {},
                )
            ]
        )
        self.created.append(full)
        await self._wait_for_leaders(admin, full, partitions, timeout)
        return full

    @staticmethod
    async def _wait_for_leaders(
        admin: AIOKafkaAdminClient, topic: str, partitions: int, timeout: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            described: list[dict[str, Any]] = await admin.describe_topics([topic])
            parts = described[0].get("partitions", []) if described else []
            if (
                described
                and described[0].get("error_code", 0) == 0
                and len(parts) == partitions
                and all(p.get("leader", -1) >= 0 for p in parts)
            ):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"topic {topic} has no leaders after {timeout}s: {described}")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self._admin is None:
            return
        try:
            if self.created:
                await self._admin.delete_topics(self.created)
        except Exception:  # best effort: a leftover uniquely named topic harms nobody
            pass
        finally:
            await self._admin.close()
            self._admin = None


@pytest.fixture
async def create_topic(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[TopicFactory]:
    factory = TopicFactory(kafka_bootstrap, topic_prefix)
    try:
        yield factory
    finally:
        await factory.close()
