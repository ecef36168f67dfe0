"""Emit SDK: record one ``UsageEvent`` per LLM call from an app, cheaply and safely.

Contract for callers:

* ``record(event)`` never raises and never blocks: it appends the raw event (a
  ``UsageEvent`` or a dict) and the current time to a bounded in-memory buffer and
  returns ``True``, or returns ``False`` when the event was dropped (buffer full
  under ``drop_newest``, or the emitter is closed). Validation, defaults, ``ts`` /
  ``event_id`` filling and JSON encoding happen later, off the caller's path, in the
  emitter's background task; an event that fails there is counted in
  ``stats.dropped_invalid`` and logged (rate-limited).
* A background task drains the buffer every ``linger_s`` (sooner when ``max_batch``
  events are waiting), groups the events by tenant and produces one Kafka message per
  tenant — key = tenant (UTF-8), value = a JSON array of events, each message at most
  ~512 KB (:func:`batch_by_tenant`). Many events per message is what makes the
  pipeline fast.
* Delivery: ``acks="all"``, idempotent producer. Failed sends are retried with
  exponential backoff, in order, while new events keep buffering (the full-buffer
  policy then applies). Nothing is lost silently: whatever is still undelivered when
  ``close()`` gives up is counted in ``stats.lost`` and logged with the number.

``AsyncEmitter`` lives on the caller's asyncio loop; ``Emitter`` runs one in a
background thread for scripts and WSGI apps (thread-safe ``record``, ``atexit``
flush). Helpers turn OpenAI / Anthropic responses and streams into events.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.codec import has_lz4

from pipeline.config import Settings, load_settings
from pipeline.costing.extract import (
    AnthropicStreamAccumulator,
    Extracted,
    from_anthropic,
    from_openai,
)
from schemas.topics import USAGE_EVENTS
from schemas.usage import UsageEvent

__all__ = [
    "AsyncEmitter",
    "Emitter",
    "EmitterStats",
    "Message",
    "batch_by_tenant",
    "encode_event",
    "openai_stream_options",
    "record_anthropic",
    "record_openai",
    "wrap_anthropic_stream",
    "wrap_openai_stream",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 512 * 1024
"""Cap of one Kafka message value (uncompressed); the broker's default limit is 1 MB."""

OnFull = Literal["drop_newest", "drop_oldest"]

_WARN_EVERY_S = 10.0
_CONVERT_CHUNK = 1000  # events converted between yields to the event loop
_BACKOFF_MIN_S = 0.1
_BACKOFF_MAX_S = 5.0
# Errors that no retry can fix: the message itself is too big for the broker.
_TOO_LARGE = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordTooLargeError)


# --------------------------------------------------------------------------- stats


class EmitterStats:
    """Counters of one emitter. Invariant: ``recorded == sent + dropped_invalid +
    evicted + lost + buffered`` where ``evicted`` are the ``drop_oldest`` drops.

    * ``recorded``: events accepted by ``record()`` (it returned ``True``);
    * ``sent``: events the broker acknowledged;
    * ``dropped_full``: events dropped because the buffer was full (the new one under
      ``drop_newest``, an old one under ``drop_oldest``);
    * ``dropped_invalid``: events that could not be turned into a valid ``UsageEvent``
      (missing fields, unserialisable values, too large for a message);
    * ``dropped_closed``: ``record()`` calls after ``close()``;
    * ``send_errors``: failed connection and message send attempts (all are retried);
    * ``lost``: accepted events still undelivered when ``close()`` gave up;
    * ``buffered``: accepted events not yet settled (waiting or in flight).
    """

    __slots__ = (
        "_settled",
        "dropped_closed",
        "dropped_full",
        "dropped_invalid",
        "lost",
        "recorded",
        "send_errors",
        "sent",
    )

    def __init__(self) -> None:
        self.recorded = 0
        self.sent = 0
        self.dropped_full = 0
        self.dropped_invalid = 0
        self.dropped_closed = 0
        self.send_errors = 0
        self.lost = 0
        self._settled = 0  # accepted events that left the emitter, whatever the outcome

    @property
    def buffered(self) -> int:
        return self.recorded - self._settled

    def as_dict(self) -> dict[str, int]:
        return {
            "recorded": self.recorded,
            "sent": self.sent,
            "dropped_full": self.dropped_full,
            "dropped_invalid": self.dropped_invalid,
            "dropped_closed": self.dropped_closed,
            "send_errors": self.send_errors,
            "lost": self.lost,
            "buffered": self.buffered,
        }

    def __repr__(self) -> str:
        return f"EmitterStats({self.as_dict()})"


class _RateLimitedLog:
    """Log at most once per ``every`` seconds, with the number of occurrences since."""

    def __init__(self, level: int, every: float = _WARN_EVERY_S) -> None:
        self.level = level
        self.every = every
        self._last = -float("inf")
        self._pending = 0

    def __call__(self, msg: str, *args: object) -> None:
        self._pending += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            count, self._pending, self._last = self._pending, 0, now
            log.log(self.level, msg + " (%d time(s) in the last %.0f s)", *args, count, self.every)


# --------------------------------------------------------------------------- pure batching


def encode_event(
    item: Any, recorded_at: float, defaults: Mapping[str, Any] | None
) -> tuple[str, bytes]:
    """One recorded item to ``(tenant, JSON bytes)``; raises on anything invalid.

    ``item`` is a ``UsageEvent`` or a mapping. ``defaults`` fill keys that are missing
    or ``None`` (the event's own values win); ``ts`` defaults to ``recorded_at`` (epoch
    seconds, UTC) and ``event_id`` to a fresh uuid4. Unknown keys end up in
    ``attributes`` (``UsageEvent``'s rule).
    """
    if isinstance(item, UsageEvent):
        data: dict[str, Any] = item.model_dump(exclude_unset=True)
    elif isinstance(item, Mapping):
        data = dict(item)
    else:
        raise TypeError(f"expected a UsageEvent or a dict, got {type(item).__name__}")
    if defaults:
        for key, value in defaults.items():
            if data.get(key) is None:
                data[key] = value
    if data.get("ts") is None:
        data["ts"] = datetime.fromtimestamp(recorded_at, UTC)
    if not data.get("event_id"):
        data["event_id"] = _uuid4()
    event = UsageEvent.model_validate(data)
    return event.tenant, event.model_dump_json().encode()


def _uuid4() -> str:
    """A random (version 4) UUID string, ~4x cheaper than ``str(uuid.uuid4())``.

    ``random`` is seeded from the OS and reseeded after ``fork``; an idempotency key
    needs uniqueness, not unpredictability.
    """
    r = random.getrandbits(128) & ~(0xF000 << 64 | 0xC000 << 48) | (0x4000 << 64 | 0x8000 << 48)
    h = f"{r:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka message: key = tenant, value = JSON array of ``count`` events."""

    key: bytes
    value: bytes
    count: int


def batch_by_tenant(
    encoded: Iterable[tuple[str, bytes]], max_bytes: int = MAX_MESSAGE_BYTES
) -> list[Message]:
    """Group encoded events by tenant into JSON-array messages of at most ``max_bytes``.

    Tenants appear in first-seen order and events keep their order within a tenant,
    so the per-tenant (= per-partition) order of ``record()`` calls is kept. An event
    bigger than ``max_bytes`` on its own gets a message of its own.
    """
    groups: dict[str, list[bytes]] = {}
    for tenant, raw in encoded:
        groups.setdefault(tenant, []).append(raw)
    out: list[Message] = []
    for tenant, raws in groups.items():
        key = tenant.encode()
        chunk: list[bytes] = []
        size = 2  # the brackets
        for raw in raws:
            extra = len(raw) + (1 if chunk else 0)
            if chunk and size + extra > max_bytes:
                out.append(Message(key, b"[" + b",".join(chunk) + b"]", len(chunk)))
                chunk, size, extra = [], 2, len(raw)
            chunk.append(raw)
            size += extra
        if chunk:
            out.append(Message(key, b"[" + b",".join(chunk) + b"]", len(chunk)))
    return out


def _compression() -> str:
    # lz4 needs the `lz4` package (aiokafka[lz4]); gzip is in the standard library.
    return "lz4" if has_lz4() else "gzip"


# --------------------------------------------------------------------------- async emitter


class AsyncEmitter:
    """Buffers usage events and produces them to ``usage.events`` in tenant batches.

    Use on one asyncio loop: ``await start()`` (or ``async with``), ``record()`` from
    anywhere (thread-safe, never raises), ``await flush()``, ``await close()``.
    ``start()`` does not fail when the broker is down: the background task keeps
    connecting with backoff while events buffer.
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        topic: str | None = None,
        *,
        settings: Settings | None = None,
        max_buffer: int = 100_000,
        on_full: OnFull = "drop_newest",
        linger_s: float = 0.05,
        max_batch: int = 5000,
        defaults: dict[str, Any] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        if on_full not in ("drop_newest", "drop_oldest"):
            raise ValueError(f"on_full must be drop_newest or drop_oldest, not {on_full!r}")
        if max_buffer < 1 or max_batch < 1 or linger_s <= 0:
            raise ValueError("max_buffer and max_batch must be >= 1 and linger_s > 0")
        if bootstrap is None or topic is None:
            settings = settings or load_settings()
        self.bootstrap = bootstrap or (settings.kafka_bootstrap if settings else "")
        self.topic = topic or (settings.topic(USAGE_EVENTS) if settings else USAGE_EVENTS)
        self.max_buffer = max_buffer
        self.on_full: OnFull = on_full
        self.linger_s = linger_s
        self.max_batch = max_batch
        self.max_message_bytes = max_message_bytes
        self.defaults = dict(defaults or {})
        self.producer_config = dict(producer_config or {})
        self.stats = EmitterStats()

        self._drop_oldest = on_full == "drop_oldest"
        self._lock = threading.Lock()
        self._buffer: deque[tuple[Any, float]] = deque()
        self._closed = False
        self._wake_pending = False
        self._flush_waiters = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake_event: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._warn_full = _RateLimitedLog(logging.WARNING)
        self._warn_invalid = _RateLimitedLog(logging.WARNING)
        self._warn_send = _RateLimitedLog(logging.WARNING)

    # -- caller side -------------------------------------------------------------------

    def record(self, event: Any) -> bool:
        """Buffer one event (``UsageEvent`` or dict); ``True`` if kept, ``False`` if dropped.

        Never raises, never blocks. Dicts are shallow-copied, so the caller may reuse
        theirs; nothing else is checked here (see the module docstring).
        """
        try:
            if self._closed:
                with self._lock:
                    self.stats.dropped_closed += 1
                return False
            item = (event.copy() if type(event) is dict else event, time.time())
            stats = self.stats
            full = evicted = False
            with self._lock:
                buffer = self._buffer
                if len(buffer) >= self.max_buffer:
                    stats.dropped_full += 1
                    if self._drop_oldest:
                        buffer.popleft()
                        stats._settled += 1
                        evicted = True
                    else:
                        full = True
                if not full:
                    buffer.append(item)
                    stats.recorded += 1
                waiting = len(buffer)
            if full or evicted:
                self._warn_full(
                    "tokenpipe emitter buffer full (%d events): %s; %d dropped so far",
                    self.max_buffer,
                    self.on_full,
                    stats.dropped_full,
                )
            if full:
                return False
            if waiting >= self.max_batch and not self._wake_pending:
                self._wake_pending = True
                self._wake()
            return True
        except Exception:  # the contract: never raise into the caller
            return False

    def _wake(self) -> None:
        loop, event = self._loop, self._wake_event
        if loop is None or event is None:
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(event.set)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task (connects to Kafka, retrying while it is down)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake_event = asyncio.Event()
        self._progress = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="tokenpipe-emitter")

    async def __aenter__(self) -> AsyncEmitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event recorded before this call is settled (sent or counted).

        Returns ``False`` on timeout (events stay buffered and keep being retried).
        """
        if self._task is None:
            await self.start()
        with self._lock:
            target = self.stats.recorded
        if self.stats._settled >= target:
            return True
        self._flush_waiters += 1
        self._wake()
        try:
            await asyncio.wait_for(self._settled_to(target), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._flush_waiters -= 1

    async def _settled_to(self, target: int) -> None:
        while self.stats._settled < target and self._task is not None and not self._task.done():
            assert self._progress is not None
            await self._progress.wait()

    async def close(self, timeout: float = 10.0) -> int:
        """Flush, stop the producer and return the number of events lost (0 when all sent).

        Returns within about ``timeout`` seconds even when the broker is down; then the
        undelivered events are counted in ``stats.lost`` and logged.
        """
        if self._closed:
            return 0
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._task is None and self.stats.buffered:
            await self.start()
        task = self._task
        if task is not None:
            self._wake()
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with self._lock:
            lost = self.stats.buffered
            self.stats.lost += lost
            self.stats._settled += lost
            self._buffer.clear()
        await self._stop_producer(max(0.5, deadline - loop.time()))
        if lost:
            log.error(
                "tokenpipe emitter closed with %d event(s) undelivered to %s (%s): LOST",
                lost,
                self.topic,
                self.stats,
            )
        return lost

    async def _stop_producer(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.stop(), timeout)
        except Exception as exc:  # best effort: undelivered events are already counted
            log.debug("tokenpipe emitter: producer stop: %r", exc)

    # -- background task ---------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake_event is not None
        wake = self._wake_event
        while True:
            waiting = len(self._buffer)
            if (
                waiting < self.max_batch
                and not self._closed
                and not (self._flush_waiters and waiting)
            ):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.linger_s)
            wake.clear()
            self._wake_pending = False
            batch = self._take()
            if not batch:
                if self._closed:
                    return
                continue
            await self._process(batch)
            self._notify_progress()

    def _take(self) -> list[tuple[Any, float]]:
        with self._lock:
            buffer = self._buffer
            if len(buffer) <= self.max_batch:
                self._buffer = deque()
                return list(buffer)
            return [buffer.popleft() for _ in range(self.max_batch)]

    def _notify_progress(self) -> None:
        old, self._progress = self._progress, asyncio.Event()
        if old is not None:
            old.set()

    def _settle(self, *, sent: int = 0, invalid: int = 0) -> None:
        with self._lock:
            self.stats.sent += sent
            self.stats.dropped_invalid += invalid
            self.stats._settled += sent + invalid

    async def _process(self, batch: list[tuple[Any, float]]) -> None:
        encoded: list[tuple[str, bytes]] = []
        invalid = 0
        for i, (item, at) in enumerate(batch):
            try:
                encoded.append(encode_event(item, at, self.defaults))
            except Exception as exc:
                invalid += 1
                self._warn_invalid(
                    "tokenpipe emitter dropped an invalid event: %.300s", " ".join(str(exc).split())
                )
            if i % _CONVERT_CHUNK == _CONVERT_CHUNK - 1:
                await asyncio.sleep(0)  # keep the caller's loop responsive
        if invalid:
            self._settle(invalid=invalid)
        messages = batch_by_tenant(encoded, self.max_message_bytes)
        if messages:
            await self._deliver(messages)

    async def _connect(self) -> AIOKafkaProducer:
        backoff = _BACKOFF_MIN_S
        while self._producer is None:
            config: dict[str, Any] = {
                "bootstrap_servers": self.bootstrap,
                "acks": "all",
                "enable_idempotence": True,
                "compression_type": _compression(),
                "max_request_size": max(1024 * 1024, self.max_message_bytes + 64 * 1024),
                "request_timeout_ms": 30_000,
                "client_id": "tokenpipe-emitter",
            }
            config.update(self.producer_config)
            producer = AIOKafkaProducer(**config)
            try:
                await producer.start()
                self._producer = producer
            except Exception as exc:
                with self._lock:
                    self.stats.send_errors += 1
                with contextlib.suppress(Exception):
                    await producer.stop()
                self._warn_send(
                    "tokenpipe emitter cannot connect to Kafka at %s: %r; retrying",
                    self.bootstrap,
                    exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        return self._producer

    async def _deliver(self, messages: list[Message]) -> None:
        """Send until every message is acknowledged (or cannot ever be); in order."""
        pending = messages
        backoff = _BACKOFF_MIN_S
        while pending:
            producer = await self._connect()
            futures: list[asyncio.Future[Any] | BaseException] = []
            for i, msg in enumerate(pending):
                try:
                    futures.append(await producer.send(self.topic, msg.value, key=msg.key))
                except Exception as exc:
                    # e.g. no metadata in time: the rest waits for the next attempt, in order
                    futures.extend([exc] * (len(pending) - i))
                    break
            failed: list[Message] = []
            first_error: BaseException | None = None
            broken = False
            for msg, fut in zip(pending, futures, strict=True):
                if isinstance(fut, BaseException):
                    error: BaseException | None = fut
                else:
                    try:
                        await fut
                        error = None
                    except Exception as exc:
                        error = exc
                if error is None:
                    self._settle(sent=msg.count)
                elif isinstance(error, _TOO_LARGE):
                    self._settle(invalid=msg.count)
                    log.error(
                        "tokenpipe emitter dropped %d event(s): message too large (%d bytes): %r",
                        msg.count,
                        len(msg.value),
                        error,
                    )
                else:
                    failed.append(msg)
                    first_error = first_error or error
                    broken = broken or not getattr(error, "retriable", True)
            if not failed:
                return
            with self._lock:
                self.stats.send_errors += len(failed)
            self._warn_send(
                "tokenpipe emitter: %d message(s) to %s failed (%r); retrying in %.1f s",
                len(failed),
                self.topic,
                first_error,
                backoff,
            )
            if broken:  # e.g. idempotence state lost: start over with a new producer
                await self._stop_producer(1.0)
            pending = failed
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)


# --------------------------------------------------------------------------- sync emitter


class Emitter:
    """A thread-safe, synchronous front to an ``AsyncEmitter`` running in its own thread.

    For scripts and WSGI apps. ``record()`` costs a few microseconds on the caller's
    thread (a lock, a deque append); everything else happens in the background thread.
    An ``atexit`` hook flushes and closes it on interpreter exit.
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        topic: str | None = None,
        *,
        close_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        self._async = AsyncEmitter(bootstrap, topic, **options)
        self.stats = self._async.stats
        self.close_timeout = close_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tokenpipe-emitter", daemon=True
        )
        self._thread.start()
        self._call(self._async.start(), 10.0)
        self._closed = False
        atexit.register(self._atexit)

    @property
    def topic(self) -> str:
        return self._async.topic

    def _call(self, coro: Any, timeout: float | None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def record(self, event: Any) -> bool:
        """Buffer one event; thread-safe, never raises (see ``AsyncEmitter.record``)."""
        return self._async.record(event)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything recorded so far is settled; ``False`` on timeout."""
        if self._closed:
            return self.stats.buffered == 0
        try:
            return bool(
                self._call(self._async.flush(timeout), None if timeout is None else timeout + 5)
            )
        except Exception:
            return False

    def close(self, timeout: float | None = None) -> int:
        """Flush, stop the background thread; returns the number of events lost."""
        if self._closed:
            return 0
        self._closed = True
        atexit.unregister(self._atexit)
        timeout = self.close_timeout if timeout is None else timeout
        lost = 0
        try:
            lost = int(self._call(self._async.close(timeout), timeout + 5))
        except Exception as exc:
            lost = self.stats.buffered
            log.error("tokenpipe emitter: close failed (%r); %d event(s) lost", exc, lost)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()
        return lost

    def _atexit(self) -> None:
        self.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers


class Recorder(Protocol):
    """Anything with ``record(event) -> bool``: ``AsyncEmitter`` or ``Emitter``."""

    def record(self, event: Any) -> bool: ...


_warn_helper = _RateLimitedLog(logging.WARNING)


def _plain(obj: Any) -> Any:
    """A JSON-like view of an SDK object: dicts, pydantic models and plain objects."""
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return _plain(dump())
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return _plain(to_dict())
    if hasattr(obj, "__dict__"):
        return {k: _plain(v) for k, v in vars(obj).items() if not k.startswith("_")}
    return obj


def _get(obj: Any, name: str) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise; ``None`` when absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _event(
    extracted: Extracted, response_id: Any, model: Any, dims: dict[str, Any]
) -> dict[str, Any]:
    usage = extracted.usage
    event: dict[str, Any] = {
        "provider": extracted.provider,
        "model": extracted.model or model or "unknown",
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }
    if isinstance(response_id, str) and response_id:
        event["event_id"] = response_id
    event.update(dims)
    return event


def _record_extracted(
    emitter: Recorder,
    extract: Callable[[], tuple[Extracted, Any, Any]],
    dims: dict[str, Any],
    what: str,
) -> bool:
    try:
        extracted, response_id, model = extract()
        return emitter.record(_event(extracted, response_id, model, dims))
    except Exception as exc:  # helpers follow record(): never raise into the app
        stats = getattr(emitter, "stats", None)
        if isinstance(stats, EmitterStats):
            stats.dropped_invalid += 1
        _warn_helper("tokenpipe: could not record %s usage: %.300s", what, exc)
        return False


def _openai_parts(response: Any) -> tuple[Extracted, Any, Any]:
    data = _plain(response)
    body = data.get("response") if isinstance(data.get("response"), Mapping) else data
    return from_openai(data), body.get("id"), body.get("model")


def _anthropic_parts(response: Any) -> tuple[Extracted, Any, Any]:
    data = _plain(response)
    return from_anthropic(data), data.get("id"), data.get("model")


def record_openai(emitter: Recorder, response: Any, **dims: Any) -> bool:
    """Record an OpenAI chat completion / Responses result (or final stream chunk).

    ``event_id`` is the response id, ``model`` the response's model, ``provider``
    ``openai``; ``dims`` (tenant, user, feature, team, api_key_id, reservation_id,
    latency_ms, ...) are added and override. Never raises; ``False`` when not recorded.
    """
    return _record_extracted(emitter, lambda: _openai_parts(response), dims, "OpenAI")


def record_anthropic(emitter: Recorder, response: Any, **dims: Any) -> bool:
    """Record an Anthropic Messages response (cache tokens folded into input). Never raises."""
    return _record_extracted(emitter, lambda: _anthropic_parts(response), dims, "Anthropic")


def openai_stream_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of OpenAI create() kwargs asking for usage in the final streamed chunk.

    Sets ``stream=True`` unless given and adds ``stream_options={"include_usage": True}``
    (keeping other stream options). With ``stream=False`` the kwargs are returned as they
    are: the API rejects ``stream_options`` on non-streaming calls.
    """
    out = dict(kwargs)
    if out.get("stream", True) is False:
        return out
    out.setdefault("stream", True)
    out["stream_options"] = {**dict(out.get("stream_options") or {}), "include_usage": True}
    return out


class _StreamUsage:
    """Collects the usage of one streamed response; records it once at the end."""

    def __init__(self, emitter: Recorder, dims: dict[str, Any], provider: str) -> None:
        self.emitter = emitter
        self.dims = dims
        self.provider = provider
        self.started = time.monotonic()
        self.done = False
        self._openai_last: Any = None
        self._anthropic = AnthropicStreamAccumulator()
        self._anthropic_seen = False
        self._id: Any = None
        self._model: Any = None

    def see(self, chunk: Any) -> None:
        try:
            if self.provider == "openai":
                self._see_openai(chunk)
            else:
                self._see_anthropic(chunk)
        except Exception as exc:  # a wrapper must never break the app's stream
            _warn_helper("tokenpipe: cannot read a streamed chunk: %.300s", exc)

    def _see_openai(self, chunk: Any) -> None:
        if _get(chunk, "usage") is not None:
            self._openai_last = chunk
            return
        kind = _get(chunk, "type")
        if isinstance(kind, str) and kind.startswith("response."):
            response = _get(chunk, "response")
            if response is not None and _get(response, "usage") is not None:
                self._openai_last = chunk

    def _see_anthropic(self, event: Any) -> None:
        kind = _get(event, "type")
        if kind == "message_start":
            message = _get(event, "message")
            self._id, self._model = _get(message, "id"), _get(message, "model")
            self._anthropic.add(_plain(event))
            self._anthropic_seen = True
        elif kind == "message_delta":
            self._anthropic.add(_plain(event))

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        dims = dict(self.dims)
        dims.setdefault("latency_ms", int((time.monotonic() - self.started) * 1000))
        if self.provider == "openai":
            if self._openai_last is None:
                _warn_helper(
                    "tokenpipe: OpenAI stream ended without usage; pass "
                    "openai_stream_options(kwargs) to create() so the last chunk carries it"
                )
                return
            record_openai(self.emitter, self._openai_last, **dims)
        else:
            if not self._anthropic_seen:
                _warn_helper("tokenpipe: Anthropic stream ended without message_start")
                return
            model, response_id = self._model, self._id
            _record_extracted(
                self.emitter,
                lambda: (self._anthropic.result(), response_id, model),
                dims,
                "Anthropic stream",
            )


class RecordingStream:
    """Sync iterator over a provider stream: yields chunks unchanged, records at the end.

    Other attributes (``response``, ``close``...) are those of the wrapped stream; it is
    also a context manager when the wrapped stream is one.
    """

    def __init__(self, stream: Any, usage: _StreamUsage) -> None:
        self._stream = stream
        self._iter = iter(stream)
        self._usage = usage

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._iter)
        except StopIteration:
            self._usage.finish()
            raise
        self._usage.see(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> RecordingStream:
        enter = getattr(self._stream, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc: Any) -> Any:
        exit_ = getattr(self._stream, "__exit__", None)
        return exit_(*exc) if exit_ is not None else None


class AsyncRecordingStream:
    """Async iterator variant of :class:`RecordingStream`."""

    def __init__(self, stream: Any, usage: _StreamUsage) -> None:
        self._stream = stream
        self._iter = stream.__aiter__()
        self._usage = usage

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._iter.__anext__()
        except StopAsyncIteration:
            self._usage.finish()
            raise
        self._usage.see(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def __aenter__(self) -> AsyncRecordingStream:
        enter = getattr(self._stream, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        exit_ = getattr(self._stream, "__aexit__", None)
        return await exit_(*exc) if exit_ is not None else None


def _wrap(stream: Any, emitter: Recorder, dims: dict[str, Any], provider: str) -> Any:
    usage = _StreamUsage(emitter, dims, provider)
    if hasattr(stream, "__aiter__"):
        return AsyncRecordingStream(stream, usage)
    return RecordingStream(stream, usage)


def wrap_openai_stream(stream: Any, emitter: Recorder, **dims: Any) -> Any:
    """Wrap an OpenAI stream (sync or async): chunks pass unchanged; when the stream
    ends, the final usage chunk (needs :func:`openai_stream_options`) is recorded once.

    Returns a :class:`RecordingStream` or, for an async iterable, an
    :class:`AsyncRecordingStream`. ``latency_ms`` defaults to the time from wrapping to
    the end of the stream. A stream abandoned early records nothing (no usage came).
    """
    return _wrap(stream, emitter, dims, "openai")


def wrap_anthropic_stream(stream: Any, emitter: Recorder, **dims: Any) -> Any:
    """Wrap an Anthropic raw event stream (``messages.create(stream=True)``), sync or
    async: events pass unchanged; ``message_start`` + ``message_delta`` usage is
    accumulated and recorded once when the stream ends."""
    return _wrap(stream, emitter, dims, "anthropic")
