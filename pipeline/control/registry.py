"""Budget definitions: the compacted ``budgets`` topic, read by every worker into memory.

Each worker reads the whole topic (partition 0, no consumer group) at start, sets
``loaded`` when it reached the end offsets seen at start, then keeps tailing it so
a budget written through any worker reaches all of them. The worker that served the
PUT applies it locally at once (``apply``), so its own next request sees it.
A value is the ``BudgetDefinition`` JSON; a tombstone (``None``) deletes.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from pipeline.budgets.matching import BudgetIndex
from schemas.budgets import BudgetDefinition

log = logging.getLogger(__name__)


class BudgetRegistry:
    """The current definitions by id and a :class:`BudgetIndex` over them."""

    def __init__(self) -> None:
        self._defs: dict[str, BudgetDefinition] = {}
        self.index = BudgetIndex([])
        self.loaded = asyncio.Event()

    def __len__(self) -> int:
        return len(self._defs)

    def get(self, budget_id: str) -> BudgetDefinition | None:
        return self._defs.get(budget_id)

    def all(self) -> list[BudgetDefinition]:
        return sorted(self._defs.values(), key=lambda d: d.id)

    def apply(self, budget_id: str, value: bytes | None) -> None:
        """Apply one ``budgets`` message (``None`` = tombstone). Bad values are logged."""
        if value is None:
            if self._defs.pop(budget_id, None) is not None:
                self._reindex()
            return
        try:
            defn = BudgetDefinition.model_validate_json(value)
        except ValidationError as exc:
            log.warning("budgets topic: ignoring invalid definition %r: %s", budget_id, exc)
            return
        if self._defs.get(budget_id) != defn:
            self._defs[budget_id] = defn
            self._reindex()

    def _reindex(self) -> None:
        self.index = BudgetIndex(list(self._defs.values()))

    async def follow(self, bootstrap: str, topic: str) -> None:
        """Read ``topic`` from the start, set ``loaded`` at its end, then tail it forever."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                self.loaded.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        if r.key is not None:
                            self.apply(r.key.decode(), r.value)
                if not self.loaded.is_set() and await consumer.position(tp) >= end:
                    log.info("loaded %d budget definition(s)", len(self))
                    self.loaded.set()
        finally:
            await consumer.stop()
