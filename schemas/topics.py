"""Topic definitions, loaded from ``schemas/topics.yaml`` (the one place they are declared)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A Kafka topic: logical name, key field, partitions, retention and cleanup policy."""

    name: str
    description: str
    schema: str
    key: str
    partitions: int
    retention_hours: int
    cleanup_policy: str

    @property
    def config(self) -> dict[str, str]:
        """Topic-level Kafka configs to create it with."""
        return {
            "retention.ms": str(self.retention_hours * 3600 * 1000),
            "cleanup.policy": self.cleanup_policy,
        }


@cache
def topics() -> dict[str, TopicSpec]:
    """All topics by logical name."""
    raw = yaml.safe_load(resources.files("schemas").joinpath("topics.yaml").read_text())
    out = {}
    for name, spec in raw["topics"].items():
        out[name] = TopicSpec(name=name, **spec)
        if out[name].cleanup_policy not in {"delete", "compact", "compact,delete"}:
            raise ValueError(f"topics.yaml: {name}.cleanup_policy is {spec['cleanup_policy']!r}")
    return out


USAGE_EVENTS = "usage.events"
USAGE_COSTED = "usage.costed"
USAGE_DLQ = "usage.dlq"
