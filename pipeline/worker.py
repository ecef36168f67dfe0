"""Run a worker: open the store, migrate if embedded, build the app, run faust until stopped."""

from __future__ import annotations

import asyncio
import logging

import faust

from pipeline.app import create_app
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.kafka_admin import ensure_topics
from pipeline.store import Store

log = logging.getLogger(__name__)


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
        worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
        worker.execute_from_commandline()
    finally:
        store.close()
