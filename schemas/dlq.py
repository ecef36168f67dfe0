"""Dead-letter record: what ``usage.dlq`` holds for every rejected event.

The original bytes are kept exactly (base64) so nothing is lost, with every
problem and where the message came from, so it can be fixed and replayed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, Field

from schemas.validation import Problem


class DeadLetter(BaseModel):
    """A rejected usage event (or whole undecodable message) on ``usage.dlq``."""

    source_topic: str = Field(description="Topic the message came from.")
    partition: int = Field(ge=-1, description="Source partition (-1: HTTP ingest).")
    offset: int = Field(ge=-1, description="Source offset (-1: HTTP ingest).")
    index: int = Field(ge=0, description="Position of the item in a batch message.")
    received_at: AwareDatetime = Field(description="When the processor rejected it (UTC).")
    errors: list[dict[str, str]] = Field(description="Every problem: {path, message}.")
    original_b64: str = Field(description="The original message value, base64.")
    item: object | None = Field(default=None, description="The decoded item, when it was JSON.")

    @classmethod
    def build(
        cls,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        index: int,
        problems: tuple[Problem, ...],
        original: bytes,
        item: object | None,
    ) -> DeadLetter:
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            index=index,
            received_at=datetime.now(UTC),
            errors=[p.as_dict() for p in problems],
            original_b64=base64.b64encode(original).decode("ascii"),
            item=item,
        )

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)
