"""Alerting: rules (YAML) over alert events, the rate evaluators, and webhook delivery.

``rules`` parses the rules file and matches ``AlertEvent``s to channels;
``delivery`` sends them (signed webhooks, Slack) with retries and records every
attempt. Anomaly detection lives in ``pipeline.anomaly``, stream windows in
``pipeline.windows``. See docs/alerts.md.
"""

from __future__ import annotations

from pipeline.alerts.delivery import (
    AlertDeliverer,
    DeliveredStore,
    InMemoryDeliveredStore,
    sign,
    slack_payload,
    verify_signature,
    webhook_body,
)
from pipeline.alerts.rules import (
    Channel,
    DlqRateEvaluator,
    Rule,
    RuleSet,
    SpendRateEvaluator,
    UnpricedCostEvaluator,
    load_rules,
    match,
    parse_rules,
    thresholds,
)

__all__ = [
    "AlertDeliverer",
    "Channel",
    "DeliveredStore",
    "DlqRateEvaluator",
    "InMemoryDeliveredStore",
    "Rule",
    "RuleSet",
    "SpendRateEvaluator",
    "UnpricedCostEvaluator",
    "load_rules",
    "match",
    "parse_rules",
    "sign",
    "slack_payload",
    "thresholds",
    "verify_signature",
    "webhook_body",
]
