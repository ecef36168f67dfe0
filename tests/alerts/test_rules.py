"""Rules file parsing (errors name file and line), matching, and the rate evaluators."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.alerts.rules import (
    DlqRateEvaluator,
    RuleSet,
    SpendRateEvaluator,
    UnpricedCostEvaluator,
    load_rules,
    match,
    parse_rules,
    thresholds,
)
from pipeline.errors import ConfigError
from schemas.alerts import AlertEvent
from tests.alerts.factory import T0, minutes, window

EXAMPLE = Path(__file__).parents[2] / "deploy" / "alerts" / "rules.example.yaml"
ENV = {
    "TOKENPIPE_ALERT_WEBHOOK_URL": "https://hooks.example.com/tokenpipe",
    "TOKENPIPE_ALERT_WEBHOOK_SECRET": "s3cret",
    "TOKENPIPE_ALERT_SLACK_URL": "https://hooks.slack.com/services/T/B/X",
}


@pytest.fixture
def rules() -> RuleSet:
    return load_rules(EXAMPLE, env=ENV)


def alert(kind: str = "budget_threshold", **kw: object) -> AlertEvent:
    args: dict = {"kind": kind, "tenant": "acme", "title": "t", "ts": T0}
    args.update(kw)
    return AlertEvent.build(**args)


def test_example_file_parses_with_env_substituted(rules: RuleSet) -> None:
    hook = rules.channels["ops-webhook"]
    assert hook.type == "webhook" and hook.url == ENV["TOKENPIPE_ALERT_WEBHOOK_URL"]
    assert hook.secret == "s3cret" and "s3cret" not in repr(hook)
    assert hook.max_attempts == 6 and hook.timeout_s == 5.0
    assert dict(hook.headers) == {"X-Source": "tokenpipe"}
    assert rules.channels["finance-slack"].type == "slack"
    assert [r.name for r in rules.rules][:2] == ["budget-crossings", "anomalies"]
    assert rules.rules[0].line == 23
    assert thresholds(rules, "spend_rate") == (Decimal(50), Decimal(500))
    assert thresholds(rules, "unpriced_cost") == (Decimal(1),)


def test_match_by_kind_filters_and_threshold(rules: RuleSet) -> None:
    names = lambda a: [c.name for c in match(rules, a)]  # noqa: E731
    assert names(alert(severity="critical")) == ["finance-slack", "ops-webhook"]
    assert names(alert(severity="info")) == []
    assert names(alert("anomaly", data={"metric": "tokens"})) == ["ops-webhook"]
    assert names(alert("anomaly", data={"metric": "calls"})) == []
    # spend_rate: each rule gets the events raised for its own threshold.
    assert names(alert("spend_rate", data={"threshold": "50"})) == ["ops-webhook", "finance-slack"]
    assert names(alert("spend_rate", tenant="globex", data={"threshold": "50"})) == []
    assert names(alert("spend_rate", tenant="globex", data={"threshold": "500.0"})) == [
        "ops-webhook"
    ]
    assert names(alert("dlq_rate", tenant="", data={"threshold": "100"})) == ["ops-webhook"]


def test_filters_accept_lists_and_globs() -> None:
    rs = parse_rules(
        textwrap.dedent("""
        channels:
          c: {type: slack, url: "https://h/x"}
        rules:
          - name: r
            when:
              kind: anomaly
              filters: {tenant: ["acme-*", globex], feature: chat}
            channels: [c]
    """)
    )
    ok = alert("anomaly", tenant="acme-eu", scope={"feature": "chat"})
    assert match(rs, ok) == [rs.channels["c"]]
    assert match(rs, alert("anomaly", tenant="initech", scope={"feature": "chat"})) == []
    assert match(rs, alert("anomaly", tenant="globex")) == []  # no feature: no match


GOOD_CHANNELS = """\
channels:
  hook: {type: webhook, url: "https://h/x", secret: s}
"""

BAD_FILES = [
    # (text, line, message part)
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when: {kind: budget}\n    channels: [hook]\n",
        5,
        "unknown kind 'budget'",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when: {kind: anomaly}\n"
        "    channels: [hook, pager]\n",
        6,
        "unknown channel 'pager'",
    ),
    (
        "channels:\n  hook:\n    type: webhook\n    secret: s\nrules: []\n",
        3,
        "missing required field 'url'",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when:\n      kind: spend_rate\n"
        "      threshold: lots\n    channels: [hook]\n",
        7,
        "expected a number, got 'lots'",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when:\n      kind: dlq_rate\n"
        "      threshold: {per_minute: 2.5}\n    channels: [hook]\n",
        7,
        "expected an integer",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when: {kind: spend_rate}\n    channels: [hook]\n",
        5,
        "needs a threshold (usd_per_hour)",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when:\n      kind: anomaly\n"
        "      threshold: 3\n    channels: [hook]\n",
        7,
        "takes no threshold",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when:\n      kind: anomaly\n"
        "      filters: {severity: urgent}\n    channels: [hook]\n",
        7,
        "unknown severity 'urgent'",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when:\n      kind: anomaly\n"
        "      filters: {tenat: acme}\n    channels: [hook]\n",
        7,
        "unknown field 'tenat'",
    ),
    ("channels:\n  s: {type: sms, url: 'https://h'}\nrules: []\n", 2, "unknown channel type 'sms'"),
    (
        "channels:\n  s:\n    type: webhook\n    url: ftp://h\n    secret: s\nrules: []\n",
        4,
        "http:// or https://",
    ),
    (
        "channels:\n  s:\n    type: webhook\n    url: https://h\n"
        "    secret: ${NOPE_UNSET}\nrules: []\n",
        5,
        "environment variable NOPE_UNSET is not set",
    ),
    (
        "channels:\n  s:\n    type: slack\n    url: https://h\n    max_attempts: 0\nrules: []\n",
        5,
        "between 1 and 50",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when: {kind: anomaly}\n    channels: [hook]\n"
        "  - name: r\n    when: {kind: anomaly}\n    channels: [hook]\n",
        7,
        "duplicate rule name 'r' (first at line 4)",
    ),
    (
        GOOD_CHANNELS + "rules:\n  - name: r\n    when: {kind: anomaly}\n    channels: []\n",
        6,
        "expected a non-empty list",
    ),
    (GOOD_CHANNELS + "rules:\n  - name: r\n    when: {kind: anomaly\n", 6, "not valid YAML"),
    ("channels: {}\nrulez: []\n", 2, "unknown field 'rulez'"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_bad_rules_file_names_file_and_line(
    text: str, line: int, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_rules(path, env={})
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert message in str(err.value)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="empty rules file"):
        parse_rules("", "x.yaml")


def test_spend_rate_over_sliding_hour_fires_once_per_threshold_and_cooldown() -> None:
    ev = SpendRateEvaluator([Decimal(50), Decimal(500)])
    fired = []
    for i in range(110):  # $1/min = $60/h once the hour is full
        fired += ev.observe(
            [
                window(T0 + minutes(i), cost="1"),
                window(T0 + minutes(i), tenant="globex", cost="0.1"),
            ]
        )
    # Crossed $50/h at the 50th minute, then once more when the 1 h cooldown ended.
    assert [(a.tenant, a.data["threshold"], a.ts) for a in fired] == [
        ("acme", "50", T0 + minutes(50)),
        ("acme", "50", T0 + minutes(110)),
    ]
    first = fired[0]
    assert first.kind == "spend_rate" and Decimal(first.data["usd_per_hour"]) == 50
    assert fired[0].alert_id != fired[1].alert_id
    # A burst crosses 500 too.
    burst = ev.observe([window(T0 + minutes(110), cost="480")])
    assert [a.data["threshold"] for a in burst] == ["500"]
    replay = SpendRateEvaluator([Decimal(50), Decimal(500)])
    replay.load_state(ev.to_state())
    assert replay.to_state() == ev.to_state()


def test_spend_rate_alert_id_is_deterministic() -> None:
    def run() -> list[str]:
        ev = SpendRateEvaluator([Decimal(10)])
        return [
            a.alert_id for i in range(30) for a in ev.observe([window(T0 + minutes(i), cost="1")])
        ]

    assert run() == run() and len(run()) == 1


def test_unpriced_cost_per_tenant_and_model() -> None:
    ev = UnpricedCostEvaluator()
    out = ev.observe(
        [
            window(T0, model="mystery-1", unpriced_calls=3),
            window(T0, model="mystery-1", feature="search", unpriced_calls=2),
            window(T0, model="gpt-4o"),
        ]
    )
    assert len(out) == 1
    a = out[0]
    assert (a.kind, a.tenant, a.scope, a.data["calls"]) == (
        "unpriced_cost",
        "acme",
        {"model": "mystery-1"},
        5,
    )
    assert ev.observe([window(T0 + minutes(1), model="mystery-1", unpriced_calls=1)]) == []
    assert len(ev.observe([window(T0 + minutes(61), model="mystery-1", unpriced_calls=1)])) == 1


def test_dlq_rate() -> None:
    ev = DlqRateEvaluator([Decimal(100)], cooldown_s=600)
    assert ev.observe(T0, 99) == []
    out = ev.observe(T0 + minutes(1), 150)
    assert [(a.kind, a.tenant, a.severity, a.data["per_minute"]) for a in out] == [
        ("dlq_rate", "", "critical", 150)
    ]
    assert ev.observe(T0 + minutes(2), 150) == []
    assert len(ev.observe(T0 + minutes(11), 150)) == 1
    assert out[0].ts == T0 + minutes(2)
    assert timedelta(0) < out[0].ts - T0
