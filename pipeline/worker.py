"""Run a worker: open the store, migrate if embedded, build the app, run faust until stopped."""

from __future__ import annotations

import asyncio
import gc
import logging

import faust

from pipeline.app import create_app
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.kafka_admin import ensure_topics
from pipeline.store import Store

log = logging.getLogger(__name__)


def tune_gc() -> None:
    """Keep CPython's cyclic GC from dominating the hot path.

    The worker allocates millions of short-lived, acyclic objects (validated events,
    prices) while holding large long-lived structures (the dedup window, buffered
    messages); with default thresholds the collector re-walked those constantly:
    py-spy showed ``gc_collect_main`` as the hottest frame of the costing agent.
    Start-up objects are frozen out of collection and generation-0 runs rarer.
    Reference counting still frees everything acyclic immediately.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def run_worker(settings: Settings, migrate: bool = True) -> None:
    """Blocking: run the worker until SIGINT/SIGTERM. The worker owns the store."""
    from pipeline import migrate as migrations

    created = asyncio.run(ensure_topics(settings))
    if created:
        log.info("created topics %s", ", ".join(created))
    store = Store.open(settings.dsn)
    params = {"raw_ttl_days": str(settings.raw_ttl_days)}
    try:
        if migrate:
            applied = migrations.apply(store, parameters=params)
            for m in applied:
                log.info("applied migration %s", m)
        else:
            pending = migrations.plan(store, params).migrations
            if pending:
                raise ConfigError(
                    f"TOKENPIPE_CLICKHOUSE_DSN: {len(pending)} migration(s) pending; "
                    "run `tokenpipe migrate`"
                )
        app = create_app(settings, store)
        tune_gc()
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
        worker.execute_from_commandline()
    finally:
        store.close()
