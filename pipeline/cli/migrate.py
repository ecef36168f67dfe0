"""`tokenpipe migrate` (placeholder until the store lands)."""

from __future__ import annotations


def migrate_command() -> None:
    """Apply ClickHouse migrations."""
    raise NotImplementedError
