"""The faust application: topics, the costing and sink agents, and the HTTP endpoints.

This module is wiring only. The logic lives in plain modules that are tested
without a broker: ``processors.costing`` (validate, dedup, price a batch),
``processors.sink`` (the insert-then-ack writer), ``ingest`` (HTTP bodies),
``report`` (queries). ``create_app`` builds a fresh app from ``Settings`` so
tests and benchmarks can run isolated apps (topic prefix, ports, DSN).

Batching: both agents read with ``Stream.noack_take`` (no ack in its ``finally``)
and ack each message themselves only when its effect is durable: the costing
agent after the broker confirmed the costed/DLQ messages, the sink after the
ClickHouse insert. Faust commits acked offsets every ``broker_commit_interval``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from time import perf_counter
from typing import Any

import faust
from faust.web import Request, Response, View

from pipeline import report
from pipeline.api import keyring_for, register_api
from pipeline.apikeys import AuthError, authorize_request
from pipeline.config import Settings
from pipeline.control import register_control
from pipeline.control.monitors import register_monitors
from pipeline.costing.pricing import PriceCatalog
from pipeline.dedup import DedupWindow
from pipeline.ingest import MAX_BODY_BYTES, BadRequest, parse_body
from pipeline.metrics import Metrics
from pipeline.processors.costing import CostingProcessor, InMessage, encode_costed
from pipeline.processors.sink import BatchWriter, CostedMessage
from pipeline.store import Store
from schemas.dlq import DeadLetter
from schemas.topics import USAGE_COSTED, USAGE_DLQ, USAGE_EVENTS, TopicSpec, topics

log = logging.getLogger(__name__)

COSTING_TAKE_MESSAGES = 256
COSTING_TAKE_SECONDS = 0.05
COSTING_SLICE_BYTES = 512 * 1024
COSTING_INFLIGHT = 4
"""Costing works on at most this many payload bytes (~1.5k events) between awaits."""


def slices_by_bytes(events: Sequence[Any], limit: int) -> list[list[Any]]:
    """Split faust events into runs whose message values add up to about ``limit`` bytes."""
    out: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for ev in events:
        n = len(ev.message.value or b"")
        if current and size + n > limit:
            out.append(current)
            current, size = [], 0
        current.append(ev)
        size += n
    if current:
        out.append(current)
    return out


@dataclass
class Runtime:
    """What the agents and views share: settings, store, processors, metrics."""

    settings: Settings
    store: Any  # pipeline.store.Store: the sink writes through it
    query_store: Any  # a second session on the same database: reads never queue behind inserts
    costing: CostingProcessor
    writer: BatchWriter
    metrics: Metrics
    executor: ThreadPoolExecutor
    query_executor: ThreadPoolExecutor


def _topic(app: faust.App, settings: Settings, spec: TopicSpec) -> faust.TopicT:
    return app.topic(
        settings.topic(spec.name),
        partitions=spec.partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        retention=timedelta(hours=spec.retention_hours),
        config={"cleanup.policy": spec.cleanup_policy},
    )


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{part.strip()}" for part in bootstrap.split(",")]


async def _send_all(sends: Sequence[Awaitable[Any]]) -> None:
    """Await broker confirmation of every send (faust returns a future per message)."""
    futures = [await s for s in sends]
    await asyncio.gather(*futures)


def create_app(settings: Settings, store: Any, catalog: PriceCatalog | None = None) -> faust.App:
    """Build the worker app. ``store`` must be open (the worker owns it)."""
    app = faust.App(
        f"{settings.topic_prefix}tokenpipe",
        broker=_broker_urls(settings.kafka_bootstrap),
        store="memory://",
        autodiscover=False,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        # short session/rebalance timeouts: restarts and tests rejoin in seconds
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        broker_rebalance_timeout=10.0,
        broker_commit_interval=1.0,
        broker_commit_every=100,
        producer_linger=0.005,
        producer_max_request_size=4 * 1024 * 1024,
        stream_buffer_maxsize=1024,
        logging_config=None,
    )
    specs = topics()
    events_topic = _topic(app, settings, specs[USAGE_EVENTS])
    costed_topic = _topic(app, settings, specs[USAGE_COSTED])
    dlq_topic = _topic(app, settings, specs[USAGE_DLQ])

    metrics = Metrics()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
    rt = Runtime(
        settings=settings,
        store=store,
        query_store=store.session() if isinstance(store, Store) else store,
        costing=CostingProcessor(
            catalog or PriceCatalog(settings.price_overrides, catalog_data=settings.catalog_file()),
            DedupWindow(settings.dedup_horizon_seconds),
        ),
        writer=BatchWriter(
            store,
            "usage_raw",
            settings.batch_max_rows,
            executor=executor,
            on_failure=lambda exc: metrics.sink_failures.inc(),
        ),
        metrics=metrics,
        executor=executor,
        query_executor=ThreadPoolExecutor(max_workers=2, thread_name_prefix="queries"),
    )
    app.tokenpipe = rt  # type: ignore[attr-defined]

    def send_dead_letters(letters: Sequence[DeadLetter]) -> list[Awaitable[Any]]:
        return [
            dlq_topic.send(key=None, value=letter.model_dump_json().encode(), force=True)
            for letter in letters
        ]

    @app.agent(events_topic, name="costing")
    async def costing_agent(stream: Any) -> None:  # faust.Stream; noack_take yields Events
        # Slices bound the CPU time between two awaits, so heartbeats, the web
        # server and the sink keep running while a large backlog is costed. Up to
        # COSTING_INFLIGHT slices wait for broker acks while the next is costed;
        # each slice's messages are acked only once all its outputs are confirmed
        # (faust commits only the contiguous acked prefix of a partition).
        inflight: deque[asyncio.Task[None]] = deque()
        try:
            async for batch in stream.noack_take(COSTING_TAKE_MESSAGES, COSTING_TAKE_SECONDS):
                for events in slices_by_bytes(batch, COSTING_SLICE_BYTES):
                    futures = await cost_slice(events)
                    inflight.append(asyncio.ensure_future(confirm_and_ack(stream, futures, events)))
                    while inflight and (len(inflight) > COSTING_INFLIGHT or inflight[0].done()):
                        await inflight.popleft()  # re-raises a failed send: nothing acked
                    await asyncio.sleep(0)
                while inflight:
                    await inflight.popleft()
        finally:
            for task in inflight:
                task.cancel()

    async def confirm_and_ack(stream: Any, futures: list[Any], events: list[Any]) -> None:
        await asyncio.gather(*futures)
        for ev in events:
            await stream.ack(ev)

    async def cost_slice(batch: list[Any]) -> list[Any]:
        """Cost one slice and enqueue its outputs; returns the broker-ack futures."""
        msgs = [
            InMessage(
                ev.message.value or b"", ev.message.topic, ev.message.partition, ev.message.offset
            )
            for ev in batch
        ]
        result = rt.costing.process(msgs)
        sends: list[Awaitable[Any]] = []
        for tenant, records in result.costed.items():
            key = tenant.encode()
            for value, headers in encode_costed(records):
                sends.append(costed_topic.send(key=key, value=value, headers=headers, force=True))
        sends.extend(send_dead_letters(result.dead_letters))
        futures = [await s for s in sends]
        metrics.events_in.inc(result.events_in)
        metrics.events_costed.inc(result.costed_count)
        metrics.events_unpriced.inc(result.unpriced)
        if result.duplicates:
            metrics.events_duplicate.labels("stream").inc(result.duplicates)
        for reason, n in result.rejected.items():
            metrics.events_rejected.labels(reason).inc(n)
        return futures

    @app.agent(costed_topic, name="sink")
    async def sink_agent(stream: Any) -> None:  # faust.Stream; noack_take yields Events
        max_messages = max(1, settings.batch_max_rows // 100)
        async for batch in stream.noack_take(max_messages, settings.batch_max_seconds):

            async def ack(events: list[Any] = batch) -> None:
                for ev in events:
                    await stream.ack(ev)

            started = perf_counter()
            messages = [
                CostedMessage.from_kafka(ev.message.value, ev.message.key, ev.message.headers)
                for ev in batch
            ]
            result = await rt.writer.write_and_ack(messages, ack, lambda: stream.should_stop)
            if result is None:
                return
            metrics.sink_insert_seconds.observe(perf_counter() - started)
            metrics.sink_rows.inc(result.inserted)
            metrics.sink_batch_rows.observe(result.inserted)
            dups = result.skipped_existing + result.duplicates_in_batch
            if dups:
                metrics.events_duplicate.labels("sink").inc(dups)

    _register_views(app, rt, events_topic, send_dead_letters)
    register_api(app, rt)
    register_control(app, rt, {USAGE_COSTED: costed_topic})
    # after register_control: the monitors reuse the rules file it loaded
    register_monitors(app, rt, costed_topic, _topic(app, settings, specs["alerts"]), dlq_topic)
    return app


def _register_views(
    app: faust.App,
    rt: Runtime,
    events_topic: faust.TopicT,
    send_dead_letters: Callable[[Sequence[DeadLetter]], list[Awaitable[Any]]],
) -> None:
    metrics = rt.metrics
    keys = keyring_for(rt.settings)

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "app": app.conf.id})

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            consumer = app.consumer
            for tp in consumer.assignment():
                committed = getattr(consumer, "_committed_offset", {}).get(tp)
                try:
                    high = consumer.highwater(tp)
                except Exception:  # not fetched yet
                    continue
                lag = max(0, (high or 0) - ((committed + 1) if committed is not None else 0))
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
            return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/v1/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            declared = request.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                metrics.ingest_requests.labels("413").inc()
                return self.error(
                    413, f"payload is {declared} bytes; the limit is {MAX_BODY_BYTES}"
                )
            body = await _read_limited(request, MAX_BODY_BYTES)
            if body is None:
                metrics.ingest_requests.labels("413").inc()
                return self.error(413, f"payload over the limit of {MAX_BODY_BYTES} bytes")
            try:
                parsed = parse_body(body)
            except BadRequest as exc:
                metrics.ingest_requests.labels("400").inc()
                return self.error(400, str(exc))
            sends: list[Awaitable[Any]] = [
                events_topic.send(
                    key=tenant.encode(),
                    value=json.dumps(items, separators=(",", ":")).encode(),
                    force=True,
                )
                for tenant, items in parsed.by_tenant.items()
            ]
            sends.extend(
                send_dead_letters(
                    [
                        DeadLetter.build(
                            source_topic="http:/v1/events",
                            partition=-1,
                            offset=-1,
                            index=r.index,
                            problems=r.problems,
                            original=body,
                            item=r.raw,
                        )
                        for r in parsed.rejected
                    ]
                )
            )
            await _send_all(sends)
            metrics.ingest_requests.labels("202").inc()
            if parsed.rejected:
                metrics.events_rejected.labels("http").inc(len(parsed.rejected))
            return self.json(parsed.response(), status=202)

    @app.page("/v1/usage/summary")
    class Summary(View):
        async def get(self, request: Request) -> Response:
            q = request.query
            try:
                # a tenant-scoped key always reads its own tenant, whatever was asked
                tenant = authorize_request(
                    keys,
                    request,
                    q.get("tenant"),
                )
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            try:
                params = report.SummaryQuery.from_strings(
                    by=q.get("by", "model"),
                    start=q.get("from"),
                    end=q.get("to"),
                    tenant=tenant,
                )
            except ValueError as exc:
                return self.error(400, str(exc))
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                rt.query_executor, report.summary, rt.query_store, params
            )
            return self.json(result.as_json())

    @app.page("/v1/usage/latency")
    class Latency(View):
        async def get(self, request: Request) -> Response:
            try:
                authorize_request(keys, request, None)
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            try:
                since = report.parse_time(request.query.get("since", "-5m"), "since")
            except ValueError as exc:
                return self.error(400, str(exc))
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                rt.query_executor, report.ingest_latency, rt.query_store, since
            )
            return self.json(result)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """Read the body, or None as soon as it exceeds ``limit`` bytes (chunked uploads)."""
    content = request.content  # type: ignore[attr-defined]  # aiohttp StreamReader
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
