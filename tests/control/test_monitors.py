"""The monitors glue: costed batches → windows → anomalies / rate alerts → durable, then ack."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from pipeline.alerts.rules import parse_rules
from pipeline.anomaly import AnomalyConfig
from pipeline.control.monitors import (
    ANOMALY_COLUMNS,
    DEFAULT_DIMS,
    BatchWindows,
    MonitorConfig,
    MonitorRunner,
    Monitors,
    _group_arrow,
    _group_python,
    _to_batch,
    anomaly_row,
    decode_costed,
    read_history,
)
from pipeline.windows import KEY_DIMS, TOKEN_KINDS, WindowAggregator
from schemas.alerts import AlertEvent

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
HOUR = int(NOW.timestamp()) - int(NOW.timestamp()) % 3600  # 12:00


def rec(tenant: str, ts: datetime, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{tenant}-{ts.isoformat()}-{n}",
        "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tenant": tenant,
        "user": "",
        "team": "",
        "feature": "chat",
        "api_key_id": "",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost_usd": "0.001",
        "priced": True,
        "status": "ok",
        **extra,
    }


def msg(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(records).encode()


def steady_history(tenants: tuple[str, ...] = ("spiky", "steady"), hours: int = 48) -> dict:
    """Two days of 10 calls/min (1 500 tokens, $0.001 each) per tenant, before 11:00."""
    rows = []
    for t in tenants:
        for h in range(2, hours + 2):
            rows.append(
                {
                    "tenant": t,
                    "feature": "chat",
                    "bucket": HOUR - h * 3600,
                    "cost_usd": Decimal("0.6"),
                    "tokens": 600 * 1500,
                    "calls": 600,
                }
            )
    return {"rollup_rows": rows, "fired_anomalies": [], "fired_rates": [], "until": HOUR - 3600}


def spike_batch(start: datetime) -> list[bytes]:
    """One window: 'spiky' at 5x its rate, 'steady' at its rate, 'fresh' brand new."""
    out = []
    out.append(msg([rec("spiky", start + timedelta(seconds=i), i) for i in range(50)]))
    out.append(msg([rec("steady", start + timedelta(seconds=i), i) for i in range(10)]))
    out.append(msg([rec("fresh", start + timedelta(seconds=i), i) for i in range(50)]))
    return out


def run_spike(m: Monitors) -> list[Any]:
    start = NOW - timedelta(minutes=5)
    first = m.on_costed(decode_costed(spike_batch(start)), NOW)
    assert first.anomalies == [] and first.alerts == []  # nothing closed yet
    tick = m.on_costed(decode_costed([msg([rec("tick", NOW, 0)])]), NOW)
    return [tick]


def test_spike_gives_anomalies_for_both_scopes_and_nothing_for_steady_or_new() -> None:
    m = Monitors()
    m.load_history(**steady_history())
    (out,) = run_spike(m)
    scopes = {(json.dumps(a.scope, sort_keys=True), a.metric) for a in out.anomalies}
    assert scopes == {
        (json.dumps(s, sort_keys=True), metric)
        for s in ({"tenant": "spiky"}, {"tenant": "spiky", "feature": "chat"})
        for metric in ("cost_usd", "tokens", "calls")
    }
    for a in out.anomalies:
        assert a.ratio > 4  # 5x the baseline (a little diluted by the unloaded hour)
    anomaly_alerts = [a for a in out.alerts if a.kind == "anomaly"]
    assert [a.alert_id for a in anomaly_alerts] == [a.anomaly_id for a in out.anomalies]
    assert all(a.tenant == "spiky" for a in out.alerts)


def test_ids_are_deterministic_across_restarts() -> None:
    ids = []
    for _ in range(2):
        m = Monitors()
        m.load_history(**steady_history())
        (out,) = run_spike(m)
        ids.append(sorted(a.alert_id for a in out.alerts))
    assert ids[0] == ids[1] and ids[0]


def test_without_history_nothing_fires() -> None:
    (out,) = run_spike(Monitors())
    assert out.anomalies == [] and out.alerts == []


def test_rebuilt_cooldown_suppresses_a_second_anomaly() -> None:
    hist = steady_history()
    start = int((NOW - timedelta(minutes=20)).timestamp())
    hist["fired_anomalies"] = [({"tenant": "spiky"}, "calls", start)]
    m = Monitors()
    m.load_history(**hist)
    (out,) = run_spike(m)
    assert ({"tenant": "spiky"}, "calls") not in [(a.scope, a.metric) for a in out.anomalies]
    assert len(out.anomalies) == 5


def test_replayed_windows_of_loaded_hours_are_not_recorded_twice() -> None:
    m = Monitors()
    m.load_history(**steady_history())
    before = m.detector.to_state()
    old = datetime.fromtimestamp(HOUR - 3 * 3600, UTC)  # inside the loaded history
    m.on_costed(decode_costed([msg([rec("spiky", old, i) for i in range(100)])]), NOW)
    out = m.on_costed(decode_costed([msg([rec("tick", NOW, 0)])]), NOW)
    assert out.anomalies == []
    assert m.detector.to_state() == before


def test_rate_thresholds_from_rules_and_defaults() -> None:
    rules = parse_rules(
        "version: 1\nchannels:\n  c: {type: slack, url: 'http://x'}\nrules:\n"
        "  - name: r\n    when: {kind: spend_rate, threshold: {usd_per_hour: 5}}\n"
        "    channels: [c]\n"
    )
    m = Monitors(rules=rules)
    assert m.spend.levels == (Decimal(5),)
    assert m.unpriced.levels == (Decimal(1),)  # defaults where the rules say nothing
    assert m.dlq.levels == (Decimal(100),)
    start = NOW - timedelta(minutes=5)
    costly = [rec("big", start, i, cost_usd="1") for i in range(6)]
    unpriced = [rec("big", start, 99, model="mystery", priced=False, cost_usd="0")]
    m.on_costed(decode_costed([msg(costly + unpriced)]), NOW)
    out = m.on_costed(decode_costed([msg([rec("tick", NOW, 0)])]), NOW)
    kinds = sorted(a.kind for a in out.alerts)
    assert kinds == ["spend_rate", "unpriced_cost"]
    spend = next(a for a in out.alerts if a.kind == "spend_rate")
    assert spend.data["threshold"] == "5"


def test_rebuilt_rate_cooldown_suppresses_the_same_alert() -> None:
    start = NOW - timedelta(minutes=5)
    window = int(start.timestamp()) - int(start.timestamp()) % 60
    m = Monitors(MonitorConfig(spend_usd_per_hour=(Decimal(5),)))
    m.load_history([], [], [("spend_rate", "big", {}, "5", window - 60)], HOUR)
    m.on_costed(decode_costed([msg([rec("big", start, i, cost_usd="1") for i in range(6)])]), NOW)
    out = m.on_costed(decode_costed([msg([rec("tick", NOW, 0)])]), NOW)
    assert [a for a in out.alerts if a.kind == "spend_rate"] == []


def test_dlq_minutes_are_counted_and_closed() -> None:
    m = Monitors(MonitorConfig(dlq_per_minute=(Decimal(3),)))
    now = NOW.timestamp()
    minute = now - now % 60 - 120
    ancient = now - 10 * 3600
    out = m.on_dead_letters([minute + 1, minute + 2, minute + 3, ancient, now], now)
    assert [a.kind for a in out.alerts] == ["dlq_rate"]
    assert out.alerts[0].data["per_minute"] == 3
    assert list(m.dlq_counts) == [int(now - now % 60)]  # the current minute is still open
    assert m.close_dlq(now + 120).alerts == []  # 1 < 3


def test_window_dims_follow_the_consumers() -> None:
    assert MonitorConfig().dims == ("tenant", "feature", "model")
    with_team = AnomalyConfig(scopes=(("tenant",), ("tenant", "team")))
    assert MonitorConfig(anomaly=with_team).dims == ("tenant", "team", "model")


def test_decode_skips_bad_messages() -> None:
    good = rec("a", NOW, 0)
    batch = decode_costed([b"not json", msg([good, {"tenant": "x"}]), json.dumps(good).encode()])
    assert batch.events == 2 and batch.max_ts == NOW
    ((_, agg),) = batch.deltas.items()
    assert agg.calls == 2 and agg.cost_usd == Decimal("0.002") and agg.key.tenant == "a"


def varied(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        ts = NOW - timedelta(seconds=7 * i)
        out.append(
            rec(
                f"t{i % 3}",
                ts,
                i,
                feature=f"f{i % 2}" if i % 5 else None,
                user=f"u{i}",
                status="error" if i % 4 == 0 else "ok",
                priced=i % 6 != 0,
                cost_usd=f"0.{i:09d}",
                input_tokens=i,
                output_tokens=2 * i,
                cache_read_tokens=i % 7,
                reasoning_tokens=i % 11,
                attributes={"k": "},{ tricky", "n": i},
            )
        )
    return out


def reference(values: list[bytes]) -> WindowAggregator:
    agg = WindowAggregator()
    records = []
    for v in values:
        for d in json.loads(v):
            # only the dims the monitors read are kept (user, team, api_key_id are '')
            ns = SimpleNamespace(
                **{k: (d.get(k) or "") if k in DEFAULT_DIMS else "" for k in KEY_DIMS}
            )
            ns.ts = datetime.fromisoformat(d["ts"])
            ns.status, ns.priced = d["status"], d["priced"]
            ns.cost_usd = Decimal(d["cost_usd"])
            for k in TOKEN_KINDS:
                setattr(ns, k, d.get(k, 0))
            records.append(ns)
    agg.add_batch(records, now=NOW)  # type: ignore[arg-type]  # duck-typed records
    return agg


def canon(agg: WindowAggregator) -> list[str]:
    return sorted(json.dumps(w, sort_keys=True) for w in agg.to_state()["windows"])


@pytest.mark.parametrize("tricky", [False, True])
def test_arrow_and_python_grouping_equal_add_batch(tricky: bool) -> None:
    records = varied(300)
    if not tricky:
        for r in records:
            r["attributes"] = {}
    values = [msg(records[i : i + 70]) for i in range(0, 300, 70)]
    want = reference(values)
    for batch in (decode_costed(values), _to_batch(*_group_python(values), 60)):
        got = BatchWindows()
        res = got.add_sums(batch, now=NOW)
        assert res.accepted == 300 and got.watermark == want.watermark
        assert canon(got) == canon(want)
    if not tricky:
        assert _group_arrow(values)[2] == 300  # the fast path really ran
    else:
        with pytest.raises(pa.ArrowException):
            _group_arrow(values)


class FakeBroker:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.pending: list[asyncio.Future[None]] = []
        self.sent: list[AlertEvent] = []

    async def send(self, alert: AlertEvent) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.sent.append(alert)
        return fut

    def confirm(self) -> None:
        for f in self.pending:
            if not f.done():
                if self.fail:
                    f.set_exception(RuntimeError("broker down"))
                else:
                    f.set_result(None)


async def test_runner_acks_only_after_insert_and_sends_are_confirmed() -> None:
    broker = FakeBroker()
    inserted: list[list[tuple[Any, ...]]] = []
    acked: list[str] = []

    async def insert(rows: list[tuple[Any, ...]]) -> None:
        await asyncio.sleep(0)
        inserted.append(rows)

    m = Monitors()
    m.load_history(**steady_history())
    runner = MonitorRunner(m, broker.send, insert, clock=lambda: NOW.timestamp())
    start = NOW - timedelta(minutes=5)

    async def ack_first() -> None:
        acked.append("first")

    await runner.costed(spike_batch(start), ack_first)
    assert acked == ["first"] and broker.sent == []  # nothing closed: acked at once

    async def ack_tick() -> None:
        acked.append("tick")

    task = asyncio.ensure_future(runner.costed([msg([rec("tick", NOW, 0)])], ack_tick))
    for _ in range(20):
        await asyncio.sleep(0)
    assert broker.sent and acked == ["first"]  # sent, not yet confirmed: no ack
    broker.confirm()
    await task
    assert acked == ["first", "tick"]
    assert len(inserted) == 1 and len(inserted[0]) == 6
    assert all(len(r) == len(ANOMALY_COLUMNS) for r in inserted[0])
    assert {r[0] for r in inserted[0]} <= {a.alert_id for a in broker.sent}


async def test_runner_does_not_ack_when_a_send_fails() -> None:
    broker = FakeBroker(fail=True)
    acked: list[int] = []

    async def insert(rows: list[tuple[Any, ...]]) -> None:
        pass

    async def ack() -> None:
        acked.append(1)

    m = Monitors()
    m.load_history(**steady_history())
    runner = MonitorRunner(m, broker.send, insert, clock=lambda: NOW.timestamp())
    await runner.costed(spike_batch(NOW - timedelta(minutes=5)), ack)
    acked.clear()
    task = asyncio.ensure_future(runner.costed([msg([rec("tick", NOW, 0)])], ack))
    for _ in range(20):
        await asyncio.sleep(0)
    broker.confirm()
    with pytest.raises(RuntimeError, match="broker down"):
        await task
    assert acked == []


async def test_tick_closes_windows_of_an_idle_stream() -> None:
    broker = FakeBroker()
    clock = [NOW.timestamp()]

    async def insert(rows: list[tuple[Any, ...]]) -> None:
        pass

    async def ack() -> None:
        pass

    m = Monitors()
    m.load_history(**steady_history())
    runner = MonitorRunner(m, broker.send, insert, clock=lambda: clock[0])
    await runner.costed(spike_batch(NOW - timedelta(minutes=1)), ack)
    await runner.tick(idle_close_s=30)
    assert m.windows.open_windows and broker.sent == []  # not idle yet
    clock[0] += 120
    task = asyncio.ensure_future(runner.tick(idle_close_s=30))
    for _ in range(20):
        await asyncio.sleep(0)
    broker.confirm()
    await task
    assert m.windows.open_windows == 0
    assert {a.kind for a in broker.sent} == {"anomaly"}


def test_anomaly_row_matches_columns() -> None:
    m = Monitors()
    m.load_history(**steady_history())
    (out,) = run_spike(m)
    row = anomaly_row(out.anomalies[0])
    assert dict(zip(ANOMALY_COLUMNS, row, strict=True))["metric"] == out.anomalies[0].metric


class FakeStore:
    def __init__(self) -> None:
        self.sql: list[str] = []

    def query_dicts(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.sql.append(sql)
        return [
            {
                "tenant": "a",
                "feature": "",
                "bucket": HOUR - 7200,
                "cost_usd": Decimal(1),
                "tokens": 10,
                "calls": 2,
            }
        ]

    def query_rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.sql.append(sql)
        if "FROM anomalies" in sql:
            return [({"tenant": "a"}, "calls", HOUR - 600)]
        return [
            ("spend_rate", "a", {}, json.dumps({"threshold": "5"}), HOUR - 540),
            ("x", "a", {}, "{", 0),
        ]


def test_read_history_feeds_load_history() -> None:
    store = FakeStore()
    hist = read_history(store, MonitorConfig(), NOW)
    assert hist["until"] == HOUR
    assert "usage_rollup_1h" in store.sql[0]
    m = Monitors(MonitorConfig(spend_usd_per_hour=(Decimal(5),)))
    m.load_history(**hist)
    state = m.detector.to_state()["scopes"]
    assert state['{"tenant": "a"}']["last_fired"] == {"calls": HOUR - 600}
    assert state['{"feature": "", "tenant": "a"}']["buckets"] == {
        str(HOUR - 7200): ["1", "10", "2"]
    }
    assert m.spend.cooldowns.fired == {"tenant=a|5": HOUR - 600}
