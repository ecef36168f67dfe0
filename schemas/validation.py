"""Validate raw usage payloads and report every problem with its field path.

A Kafka message value (or HTTP body item) is either one JSON object (one
``UsageEvent``) or a JSON array of them (a batch envelope: producers we write
carry many events per message, because per-message work is what limits
throughput). ``validate_payload`` never raises on bad data: it returns the valid
events and, for each invalid one, the list of problems, so the caller can send
exactly the bad items to the dead-letter topic and go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.usage import UsageEvent


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an event: ``path`` like ``input_tokens`` or ``attributes.k``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item that failed validation: its position in the payload and every problem."""

    index: int
    problems: tuple[Problem, ...]
    raw: Any  # the decoded item (or None when the payload was not JSON)

    @property
    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems)


_BATCH = TypeAdapter(list[UsageEvent])


def problems_from(exc: ValidationError) -> tuple[Problem, ...]:
    """Turn a pydantic error into ``Problem``s with dotted field paths."""
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(Problem(path, msg))
    return tuple(out)


def validate_event(item: Any) -> tuple[UsageEvent | None, tuple[Problem, ...]]:
    """Validate one decoded JSON value; return the event or every problem found."""
    if not isinstance(item, dict):
        return None, (Problem("", f"expected a JSON object, got {type(item).__name__}"),)
    try:
        return UsageEvent.model_validate(item), ()
    except ValidationError as exc:
        return None, problems_from(exc)


def decode(payload: bytes | str) -> tuple[list[Any] | None, Problem | None]:
    """Decode a payload into a list of items (a single object becomes a one-item list)."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, Problem("", f"malformed JSON: {exc}")
    if isinstance(data, list):
        return data, None
    return [data], None


def validate_payload(payload: bytes | str) -> tuple[list[UsageEvent], list[Rejected]]:
    """Validate a message value holding one event or a JSON array of events.

    Fast path: pydantic-core parses and validates the raw JSON bytes in one call
    (no ``json.loads``, no per-item Python; ~4x cheaper per event). Only when
    something is wrong is the payload decoded and each item validated on its own,
    to report every problem of every bad item.
    """
    head = payload.lstrip()[:1]
    try:
        if head in (b"[", "["):
            return _BATCH.validate_json(payload), []
        if head in (b"{", "{"):
            return [UsageEvent.model_validate_json(payload)], []
    except ValidationError:
        pass
    items, problem = decode(payload)
    if items is None:
        assert problem is not None
        return [], [Rejected(0, (problem,), None)]
    good: list[UsageEvent] = []
    bad: list[Rejected] = []
    for i, item in enumerate(items):
        event, problems = validate_event(item)
        if event is not None:
            good.append(event)
        else:
            bad.append(Rejected(i, problems, item))
    return good, bad
