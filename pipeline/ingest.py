"""HTTP ingest, pure part: turn a request body into accepted events and per-item rejections.

Accepted bodies (``POST /v1/events``):

* one ``UsageEvent`` JSON object, or a JSON array of them;
* a CloudEvents 1.0 envelope in structured mode (``{"specversion": "1.0", ...,
  "data": <event or array>}``), or a batch of such envelopes (a JSON array,
  ``application/cloudevents-batch+json``). In binary mode (``ce-specversion``
  header) the body is the data itself and is handled as plain JSON.

Validation is the same as the stream's (``schemas.validation``); the accepted
items are grouped by tenant so each group becomes one Kafka message keyed by
tenant (a JSON array: many events per message is what makes ingest fast).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from schemas.validation import Problem, Rejected, validate_event

MAX_BODY_BYTES = 1024 * 1024


class BadRequest(ValueError):
    """The body as a whole cannot be used (not JSON, empty, wrong shape): answer 400."""


@dataclass
class IngestResult:
    """Accepted raw items grouped by tenant, and one rejection per bad item."""

    by_tenant: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(len(v) for v in self.by_tenant.values())

    def response(self) -> dict[str, Any]:
        """The 202 response body: counts and a reason per rejected item."""
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "errors": [
                {
                    "index": r.index,
                    "reason": r.reason,
                    "problems": [p.as_dict() for p in r.problems],
                }
                for r in self.rejected
            ],
        }


def _is_cloudevent(obj: Any) -> bool:
    return isinstance(obj, dict) and "specversion" in obj and ("data" in obj or "type" in obj)


def _unwrap(obj: Any) -> list[Any]:
    if _is_cloudevent(obj):
        if obj.get("specversion") != "1.0":
            return [
                Problem("specversion", f"unsupported CloudEvents version {obj['specversion']!r}")
            ]
        data = obj.get("data")
        if isinstance(data, str):  # data sent as a JSON string
            try:
                data = json.loads(data)
            except ValueError:
                return [Problem("data", "CloudEvent data is a string that is not JSON")]
        return data if isinstance(data, list) else [data]
    return [obj]


def parse_body(body: bytes) -> IngestResult:
    """Validate a request body; raises ``BadRequest`` only when no item can be read at all."""
    if not body.strip():
        raise BadRequest("empty body: send a UsageEvent object or an array of them")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    top = data if isinstance(data, list) else [data]
    if not top:
        raise BadRequest("empty batch")
    items: list[Any] = []
    for obj in top:
        items.extend(_unwrap(obj))
    out = IngestResult()
    for index, item in enumerate(items):
        if isinstance(item, Problem):
            out.rejected.append(Rejected(index, (item,), None))
            continue
        event, problems = validate_event(item)
        if event is None:
            out.rejected.append(Rejected(index, problems, item))
        else:
            out.by_tenant[event.tenant].append(item)
    return out
