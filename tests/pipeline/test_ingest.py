"""HTTP ingest body parsing: plain JSON, batches, CloudEvents, per-item reasons."""

from __future__ import annotations

import json

import pytest

from pipeline.ingest import BadRequest, parse_body

EV = {
    "event_id": "e1",
    "ts": "2026-11-20T10:00:00Z",
    "tenant": "acme",
    "model": "gpt-4o",
    "input_tokens": 10,
    "output_tokens": 2,
}


def test_single_event() -> None:
    r = parse_body(json.dumps(EV).encode())
    assert r.accepted == 1 and not r.rejected
    assert r.by_tenant["acme"] == [EV]


def test_batch_groups_by_tenant_and_reports_each_bad_item() -> None:
    other = dict(EV, event_id="e2", tenant="globex")
    body = json.dumps([EV, {"tenant": "x"}, other, dict(EV, input_tokens=-3)]).encode()
    r = parse_body(body)
    assert r.accepted == 2 and set(r.by_tenant) == {"acme", "globex"}
    resp = r.response()
    assert resp["rejected"] == 2
    assert [e["index"] for e in resp["errors"]] == [1, 3]
    assert "input_tokens" in resp["errors"][1]["reason"]


def test_cloudevents_structured_and_batch() -> None:
    ce = {"specversion": "1.0", "id": "1", "source": "app", "type": "usage", "data": EV}
    assert parse_body(json.dumps(ce).encode()).accepted == 1
    batch = [ce, dict(ce, id="2", data=dict(EV, event_id="e2"))]
    assert parse_body(json.dumps(batch).encode()).accepted == 2
    wrong = dict(ce, specversion="0.3")
    r = parse_body(json.dumps(wrong).encode())
    assert r.accepted == 0 and "specversion" in r.rejected[0].reason


@pytest.mark.parametrize("body", [b"", b"   ", b"{not json", b"[]"])
def test_unusable_bodies_are_400(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_body(body)
