"""Daily digest: top spenders, recommendations, HTML and Slack renderings."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from decimal import Decimal

from pipeline.digest import build_digest, render_html, slack_payload
from tests.api.helpers import NOW, insert_two_tenants
from tests.conftest import RAW_INSERT_COLUMNS, raw_row


def _workload(store) -> None:
    t = NOW - timedelta(hours=2)
    rows = []
    for i in range(30):
        # big prompts, no cache reads: caching candidate
        rows.append(
            raw_row(
                f"rag{i}",
                t,
                tenant="acme",
                feature="rag<script>",
                input_tokens=8000,
                cache_read_tokens=0,
                output_tokens=400,
                cost_usd=Decimal("0.002"),
            )
        )
        # expensive model, short answers: downgrade candidate
        rows.append(
            raw_row(
                f"cls{i}",
                t,
                tenant="acme",
                feature="classify",
                model="o1",
                input_tokens=500,
                cache_read_tokens=0,
                output_tokens=20,
                reasoning_tokens=0,
                cost_usd=Decimal("0.05"),
                user="carol",
            )
        )
    rows.append(
        raw_row("u1", t, tenant="acme", model="mystery", priced=False, cost_usd=Decimal("0"))
    )
    store.insert_rows("usage_raw", rows, RAW_INSERT_COLUMNS)


def test_digest_tops_and_recommendations(store) -> None:
    insert_two_tenants(store)
    _workload(store)
    d = build_digest(store, NOW.date(), "acme")
    assert d.total_cost_usd == Decimal("6.5") + 30 * Decimal("0.002") + 30 * Decimal("0.05")
    assert d.by_feature[0]["key"] == "chat"  # 6.5 USD from insert_two_tenants
    assert d.by_model[0]["key"] == "gpt-4o"
    assert {u["key"] for u in d.by_user} == {"alice", "carol"}  # never globex's bob
    kinds = {(r.kind, r.target) for r in d.recommendations}
    assert ("prompt_caching", "rag<script>") in kinds
    assert ("model_downgrade", "o1") in kinds
    assert ("unpriced_model", "mystery") in kinds
    assert not any(r.target == "chat" for r in d.recommendations)  # only 3 calls


def test_digest_renderings(store) -> None:
    _workload(store)
    d = build_digest(store, NOW.date())
    page = render_html(d)
    assert page.startswith("<!doctype html>") and "<script>" not in page
    assert html.escape("rag<script>") in page and "Recommendations" in page
    payload = slack_payload(d)
    assert payload["text"].startswith(f"tokenpipe daily digest {NOW.date().isoformat()}")
    assert payload["blocks"][0]["type"] == "header"
    body = json.dumps(d.as_json())
    assert json.loads(body)["type"] == "tokenpipe.daily_digest"


def test_empty_day(store) -> None:
    d = build_digest(store, (NOW - timedelta(days=3)).date(), "nobody")
    assert d.calls == 0 and d.total_cost_usd == 0 and d.recommendations == []
    assert "No usage" in render_html(d)
