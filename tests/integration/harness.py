"""Run real ``tokenpipe worker`` processes for integration tests and benchmarks.

Each worker is a subprocess with its own data dir (embedded ClickHouse), web port
and topic prefix; the test talks to it over HTTP (``/v1/usage/summary``,
``/metrics``), because chDB lets only the owning process open the store.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """A test killed by its timeout skips its ``finally``: never leave a worker running."""
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()


class WorkerProcess:
    """A ``tokenpipe worker`` subprocess; logs go to ``<data_dir>/worker-N.log``."""

    def __init__(self, bootstrap: str, prefix: str, data_dir: Path, **settings: Any) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = dict(os.environ)
        self.env.update(
            {
                "TOKENPIPE_KAFKA_BOOTSTRAP": bootstrap,
                "TOKENPIPE_TOPIC_PREFIX": prefix,
                "TOKENPIPE_DATA_DIR": str(data_dir),
                "TOKENPIPE_WEB_PORT": str(self.port),
                "TOKENPIPE_LOG_LEVEL": "warning",
                "TOKENPIPE_CLICKHOUSE_DSN": "",
            }
        )
        self.env.update({f"TOKENPIPE_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.starts}.log"

    def start(self, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.main", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _LIVE.add(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker not healthy in {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def summary(self, by: str = "model") -> dict[str, Any]:
        r = httpx.get(self.url + "/v1/usage/summary", params={"by": by}, timeout=30)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def metrics(self) -> dict[str, float]:
        text = httpx.get(self.url + "/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def wait_for_calls(self, n: int, timeout: float = 120.0, settle: float = 2.0) -> dict[str, Any]:
        """Wait until ``usage_raw`` holds ``n`` rows, then ``settle`` s more; return totals."""
        deadline = time.monotonic() + timeout
        total: dict[str, Any] = {}
        while time.monotonic() < deadline:
            total = self.summary()["total"]
            if total["calls"] >= n:
                time.sleep(settle)
                return dict(self.summary()["total"])
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker died:\n{self.tail()}")
            time.sleep(0.5)
        raise TimeoutError(f"only {total.get('calls')} of {n} rows after {timeout}s\n{self.tail()}")


def in_own_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run the module-level ``fn(*args)`` in a fresh Python process and return its result.

    For opening a worker's embedded store from a test: chDB allows one data path per
    process, and the test process already holds the session's path.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


async def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> int:
    """Produce (key, value) messages and wait for every ack; return how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    n = 0
    try:
        futures = []
        for key, value in messages:
            futures.append(await producer.send(topic, value=value, key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read ``topic`` from the start until ``expect`` messages (or the timeout)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(json.loads(r.value) for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return out


def expected_totals(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What ``/v1/usage/summary`` must say for these unique valid events, priced independently."""
    from datetime import datetime

    from pipeline.costing.pricing import PriceCatalog
    from pipeline.costing.usage import TokenUsage

    catalog = PriceCatalog()
    uniq = {e["event_id"]: e for e in events}
    prices = catalog.price_many(
        [
            (
                e["model"],
                e.get("provider") or None,
                TokenUsage(
                    e["input_tokens"],
                    e["output_tokens"],
                    e.get("cache_read_tokens", 0),
                    e.get("cache_write_tokens", 0),
                    e.get("reasoning_tokens", 0),
                ),
                datetime.fromisoformat(e["ts"].replace("Z", "+00:00")),
            )
            for e in uniq.values()
        ]
    )
    return {
        "calls": len(uniq),
        "input_tokens": sum(e["input_tokens"] for e in uniq.values()),
        "output_tokens": sum(e["output_tokens"] for e in uniq.values()),
        "cache_read_tokens": sum(e.get("cache_read_tokens", 0) for e in uniq.values()),
        "reasoning_tokens": sum(e.get("reasoning_tokens", 0) for e in uniq.values()),
        "cost_usd": sum((p.cost_usd for p in prices), Decimal(0)),
        "unpriced_calls": sum(1 for p in prices if not p.priced),
    }


def assert_totals(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        actual = Decimal(got[key]) if key == "cost_usd" else got[key]
        assert actual == value, f"{key}: got {actual}, want {value}"
