"""Alert rules: the YAML rules file, rule matching, and the rate evaluators.

Rules file (see ``deploy/alerts/rules.example.yaml`` and docs/alerts.md)::

    version: 1
    channels:
      ops:   {type: webhook, url: https://…, secret: ${OPS_SECRET}, max_attempts: 5}
      slack: {type: slack, url: ${SLACK_URL}}
    rules:
      - name: runaway-spend
        when: {kind: spend_rate, filters: {tenant: acme}, threshold: {usd_per_hour: 50}}
        channels: [ops, slack]

The file is read through ``yaml.compose`` so every node keeps its line: any
problem (unknown kind, unknown channel, missing url, a threshold of the wrong
type, an unset ``${ENV_VAR}``…) stops start-up with a ``ConfigError`` reading
``<file>:<line>: <where>: <what is wrong>``.

Thresholds and matching: a rule with a threshold only receives events raised
for exactly that threshold (``alert.data["threshold"]``). The evaluators below
are built with every threshold the rules use for their kind (``thresholds``),
raise one event per (scope, threshold) crossing per cooldown, and ``match``
routes each event to the rules that asked for that threshold. So a 50 USD/h rule
for one tenant and a 500 USD/h rule for everyone each get their own alert.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ConfigError
from pipeline.windows import DEFAULT_WINDOW_S, WindowAgg
from schemas.alerts import ALERT_KINDS, SCOPE_DIMS, SEVERITIES, AlertEvent, AlertKind

ChannelType = Literal["webhook", "slack"]
CHANNEL_TYPES: tuple[str, ...] = ("webhook", "slack")
FILTER_KEYS: tuple[str, ...] = (*SCOPE_DIMS, "severity")

# What a threshold means for each kind; None: the kind takes no threshold.
THRESHOLD_UNITS: dict[str, str | None] = {
    "spend_rate": "usd_per_hour",
    "dlq_rate": "per_minute",
    "unpriced_cost": "calls",
    "anomaly": None,
    "budget_threshold": None,
}
THRESHOLD_REQUIRED = {"spend_rate", "dlq_rate"}
DEFAULT_UNPRICED_THRESHOLD = Decimal(1)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Channel:
    """Where alerts go. ``secret`` signs webhook bodies (HMAC-SHA256)."""

    name: str
    type: ChannelType
    url: str
    secret: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Rule:
    """``when`` an alert of ``kind`` passes ``filters`` (and ``threshold``), send to channels."""

    name: str
    kind: AlertKind
    channels: tuple[str, ...]
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    threshold: Decimal | None = None
    line: int = 0

    def matches(self, alert: AlertEvent) -> bool:
        if alert.kind != self.kind:
            return False
        if self.threshold is not None:
            raw = alert.data.get("threshold")
            try:
                if raw is None or Decimal(str(raw)) != self.threshold:
                    return False
            except InvalidOperation:
                return False
        dims = alert.dims()
        for key, patterns in self.filters.items():
            value = dims.get(key)
            if value is None or not any(fnmatchcase(value, p) for p in patterns):
                return False
        return True


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A parsed rules file."""

    channels: Mapping[str, Channel]
    rules: tuple[Rule, ...]
    path: str = "<rules>"


def match(rules: RuleSet, alert: AlertEvent) -> list[Channel]:
    """Channels ``alert`` goes to: union over matching rules, each channel once, in order."""
    out: dict[str, Channel] = {}
    for rule in rules.rules:
        if rule.matches(alert):
            for name in rule.channels:
                out.setdefault(name, rules.channels[name])
    return list(out.values())


def thresholds(rules: RuleSet, kind: AlertKind) -> tuple[Decimal, ...]:
    """Every threshold the rules use for ``kind``, ascending (build evaluators with these)."""
    levels = {r.threshold for r in rules.rules if r.kind == kind and r.threshold is not None}
    return tuple(sorted(levels))


# -- parsing ----------------------------------------------------------------------------


class _Reader:
    """Walks the node tree; every error names file, line and field."""

    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    def fail(self, node: Node | None, where: str, message: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConfigError(f"{self.path}{line}: {where}: {message}")

    def mapping(
        self, node: Node, where: str, allowed: Iterable[str] | None = None
    ) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, where, "expected a mapping")
        allowed_set = set(allowed) if allowed is not None else None
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or not str(key_node.value):
                raise self.fail(key_node, where, "keys must be plain strings")
            key = str(key_node.value)
            if allowed_set is not None and key not in allowed_set:
                known = ", ".join(sorted(allowed_set))
                raise self.fail(key_node, where, f"unknown field {key!r} (allowed: {known})")
            if key in out:
                raise self.fail(key_node, where, f"duplicate field {key!r}")
            out[key] = (key_node, value_node)
        return out

    def require(
        self, fields: dict[str, tuple[Node, Node]], name: str, parent: Node, where: str
    ) -> Node:
        if name not in fields:
            raise self.fail(parent, where, f"missing required field {name!r}")
        return fields[name][1]

    def string(self, node: Node, where: str, *, env: bool = False) -> str:
        if (
            not isinstance(node, ScalarNode)
            or node.tag == "tag:yaml.org,2002:null"
            or not str(node.value).strip()
        ):
            raise self.fail(node, where, "expected a non-empty string")
        value = str(node.value).strip()
        return self.substitute(node, where, value) if env else value

    def substitute(self, node: Node, where: str, value: str) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.env:
                raise self.fail(node, where, f"environment variable {name} is not set")
            return self.env[name]

        return _ENV.sub(repl, value)

    def strings(self, node: Node, where: str) -> tuple[str, ...]:
        """A string or a non-empty list of strings."""
        if isinstance(node, SequenceNode):
            if not node.value:
                raise self.fail(node, where, "expected a non-empty list")
            return tuple(self.string(item, where) for item in node.value)
        return (self.string(node, where),)

    def number(self, node: Node, where: str, *, integer: bool = False) -> Decimal:
        kind = "an integer" if integer else "a number"
        if not isinstance(node, ScalarNode) or node.tag in (
            "tag:yaml.org,2002:null",
            "tag:yaml.org,2002:bool",
        ):
            raise self.fail(node, where, f"expected {kind}")
        try:
            value = Decimal(str(node.value).replace("_", ""))
        except InvalidOperation:
            raise self.fail(node, where, f"expected {kind}, got {node.value!r}") from None
        if not value.is_finite() or (integer and value != value.to_integral_value()):
            raise self.fail(node, where, f"expected {kind}, got {node.value!r}")
        return value

    def bounded(
        self, node: Node, where: str, lo: Decimal, hi: Decimal, *, integer: bool = False
    ) -> Decimal:
        value = self.number(node, where, integer=integer)
        if not lo <= value <= hi:
            raise self.fail(node, where, f"must be between {lo} and {hi}, got {value}")
        return value


def _channel(reader: _Reader, name: str, node: Node) -> Channel:
    where = f"channels.{name}"
    fields = reader.mapping(
        node,
        where,
        {
            "type",
            "url",
            "secret",
            "headers",
            "timeout_s",
            "max_attempts",
            "backoff_base_s",
            "backoff_max_s",
        },
    )
    ctype = reader.string(reader.require(fields, "type", node, where), f"{where}.type")
    if ctype not in CHANNEL_TYPES:
        raise reader.fail(
            fields["type"][1],
            f"{where}.type",
            f"unknown channel type {ctype!r} (allowed: {', '.join(CHANNEL_TYPES)})",
        )
    url_node = reader.require(fields, "url", node, where)
    url = reader.string(url_node, f"{where}.url", env=True)
    if not url.startswith(("http://", "https://")):
        raise reader.fail(url_node, f"{where}.url", "must be an http:// or https:// URL")
    secret = ""
    if ctype == "webhook":
        secret_node = reader.require(fields, "secret", node, where)
        secret = reader.string(secret_node, f"{where}.secret", env=True)
    elif "secret" in fields:
        raise reader.fail(fields["secret"][0], f"{where}.secret", "only webhook channels sign")
    headers: dict[str, str] = {}
    if "headers" in fields:
        header_nodes = reader.mapping(fields["headers"][1], f"{where}.headers")
        for key, (_, value_node) in header_nodes.items():
            headers[key] = reader.string(value_node, f"{where}.headers.{key}", env=True)

    def num(key: str, default: float, lo: str, hi: str, integer: bool = False) -> Decimal:
        if key not in fields:
            return Decimal(str(default))
        return reader.bounded(
            fields[key][1], f"{where}.{key}", Decimal(lo), Decimal(hi), integer=integer
        )

    base = num("backoff_base_s", 1.0, "0", "3600")
    cap = num("backoff_max_s", 60.0, "0", "86400")
    if cap < base:
        raise reader.fail(node, where, "backoff_max_s must be >= backoff_base_s")
    timeout = num("timeout_s", 10.0, "0.001", "300")
    return Channel(
        name=name,
        type="webhook" if ctype == "webhook" else "slack",
        url=url,
        secret=secret,
        headers=headers,
        timeout_s=float(timeout),
        max_attempts=int(num("max_attempts", 5, "1", "50", integer=True)),
        backoff_base_s=float(base),
        backoff_max_s=float(cap),
    )


def _threshold(reader: _Reader, kind: str, node: Node, where: str) -> Decimal:
    unit = THRESHOLD_UNITS[kind]
    if unit is None:
        raise reader.fail(node, where, f"kind {kind!r} takes no threshold")
    value_node = node
    if isinstance(node, MappingNode):
        fields = reader.mapping(node, where, {unit})
        value_node = reader.require(fields, unit, node, where)
    value = reader.number(value_node, f"{where} ({unit})", integer=kind != "spend_rate")
    if value <= 0:
        raise reader.fail(value_node, f"{where} ({unit})", f"must be > 0, got {value}")
    return value


def _rule(reader: _Reader, index: int, node: Node, channels: Mapping[str, Channel]) -> Rule:
    where = f"rules[{index}]"
    fields = reader.mapping(node, where, {"name", "when", "channels"})
    name = reader.string(reader.require(fields, "name", node, where), f"{where}.name")
    where = f"rules[{index}] ({name})"
    when_node = reader.require(fields, "when", node, where)
    when = reader.mapping(when_node, f"{where}.when", {"kind", "filters", "threshold"})
    kind_node = reader.require(when, "kind", when_node, f"{where}.when")
    kind = reader.string(kind_node, f"{where}.when.kind")
    if kind not in ALERT_KINDS:
        raise reader.fail(
            kind_node,
            f"{where}.when.kind",
            f"unknown kind {kind!r} (allowed: {', '.join(ALERT_KINDS)})",
        )
    filters: dict[str, tuple[str, ...]] = {}
    if "filters" in when:
        raw = reader.mapping(when["filters"][1], f"{where}.when.filters", FILTER_KEYS)
        for key, (_, value_node) in raw.items():
            values = reader.strings(value_node, f"{where}.when.filters.{key}")
            if key == "severity":
                for v in values:
                    if not any(ch in v for ch in "*?[") and v not in SEVERITIES:
                        raise reader.fail(
                            value_node,
                            f"{where}.when.filters.severity",
                            f"unknown severity {v!r} (allowed: {', '.join(SEVERITIES)})",
                        )
            filters[key] = values
    threshold: Decimal | None = None
    if "threshold" in when:
        threshold = _threshold(reader, kind, when["threshold"][1], f"{where}.when.threshold")
    elif kind in THRESHOLD_REQUIRED:
        raise reader.fail(
            when_node,
            f"{where}.when",
            f"kind {kind!r} needs a threshold ({THRESHOLD_UNITS[kind]})",
        )
    elif kind == "unpriced_cost":
        threshold = DEFAULT_UNPRICED_THRESHOLD
    channels_node = reader.require(fields, "channels", node, where)
    if not isinstance(channels_node, SequenceNode) or not channels_node.value:
        raise reader.fail(channels_node, f"{where}.channels", "expected a non-empty list")
    names: list[str] = []
    for item in channels_node.value:
        cname = reader.string(item, f"{where}.channels")
        if cname not in channels:
            known = ", ".join(sorted(channels)) or "none defined"
            raise reader.fail(
                item, f"{where}.channels", f"unknown channel {cname!r} (defined: {known})"
            )
        if cname not in names:
            names.append(cname)
    return Rule(
        name=name,
        kind=kind,  # type: ignore[arg-type]  # checked against ALERT_KINDS above
        channels=tuple(names),
        filters=filters,
        threshold=threshold,
        line=node.start_mark.line + 1,
    )


def parse_rules(text: str, path: str = "<rules>", env: Mapping[str, str] | None = None) -> RuleSet:
    """Parse rules YAML; raises ``ConfigError`` ``<path>:<line>: <where>: <problem>``.

    ``${NAME}`` in urls, secrets and header values is replaced from ``env``
    (default ``os.environ``); an unset variable is an error.
    """
    reader = _Reader(path, os.environ if env is None else env)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if root is None:
        raise ConfigError(f"{path}: empty rules file (needs 'channels' and 'rules')")
    top = reader.mapping(root, "top level", {"version", "channels", "rules"})
    if "version" in top and reader.string(top["version"][1], "version") != "1":
        raise reader.fail(top["version"][1], "version", "only version 1 is supported")
    channels: dict[str, Channel] = {}
    channels_node = reader.require(top, "channels", root, "top level")
    for name, (_, node) in reader.mapping(channels_node, "channels").items():
        channels[name] = _channel(reader, name, node)
    rules_node = reader.require(top, "rules", root, "top level")
    if not isinstance(rules_node, SequenceNode):
        raise reader.fail(rules_node, "rules", "expected a list")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(rules_node.value):
        rule = _rule(reader, i, node, channels)
        if rule.name in seen:
            raise reader.fail(
                node,
                f"rules[{i}]",
                f"duplicate rule name {rule.name!r} (first at line {seen[rule.name]})",
            )
        seen[rule.name] = rule.line
        rules.append(rule)
    return RuleSet(channels=channels, rules=tuple(rules), path=path)


def load_rules(path: str | Path, env: Mapping[str, str] | None = None) -> RuleSet:
    """Read and parse a rules file (``ConfigError`` if unreadable or invalid)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read alert rules file: {exc.strerror}") from None
    return parse_rules(text, str(path), env)


# -- evaluators -------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_s(ts: datetime) -> int:
    return int((ts - _EPOCH).total_seconds())


def _at(s: int) -> datetime:
    return _EPOCH + timedelta(seconds=s)


class _Cooldowns:
    """Last firing time (event time, epoch s) per (scope, level); JSON-able."""

    def __init__(self, cooldown_s: int) -> None:
        self.cooldown_s = cooldown_s
        self.fired: dict[str, int] = {}

    def ready(self, scope_key: str, level: Decimal, at: int) -> bool:
        last = self.fired.get(f"{scope_key}|{level}")
        return last is None or at >= last + self.cooldown_s

    def fire(self, scope_key: str, level: Decimal, at: int) -> None:
        self.fired[f"{scope_key}|{level}"] = at


def _scope_key(scope: Mapping[str, str]) -> str:
    return "\x1f".join(f"{k}={v}" for k, v in sorted(scope.items()))


def _check_levels(levels: Iterable[Decimal]) -> tuple[Decimal, ...]:
    out = tuple(sorted({Decimal(lv) for lv in levels}))
    if any(lv <= 0 for lv in out):
        raise ValueError("thresholds must be > 0")
    return out


class SpendRateEvaluator:
    """USD per hour over a sliding hour of closed windows, per scope (default: tenant).

    The rate at a window is the cost of the windows starting in the hour that
    ends with it. Each threshold fires once per scope per ``cooldown_s`` (event
    time). Windows must arrive in start order per scope (``closed_windows`` order).
    """

    kind: AlertKind = "spend_rate"

    def __init__(
        self,
        levels: Iterable[Decimal],
        *,
        scope_dims: tuple[str, ...] = ("tenant",),
        window_s: int = DEFAULT_WINDOW_S,
        span_s: int = 3_600,
        cooldown_s: int = 3_600,
    ) -> None:
        if not scope_dims or scope_dims[0] != "tenant":
            raise ValueError("scope_dims must start with 'tenant'")
        self.levels = _check_levels(levels)
        self.scope_dims = scope_dims
        self.window_s = window_s
        self.span_s = span_s
        self.cooldowns = _Cooldowns(cooldown_s)
        self._costs: dict[str, dict[int, Decimal]] = {}  # scope key -> window start -> cost

    def observe(self, windows: Iterable[WindowAgg]) -> list[AlertEvent]:
        rolled: dict[tuple[int, str], Decimal] = {}
        scopes: dict[str, dict[str, str]] = {}
        for w in windows:
            dims = w.key.as_dict()
            scope = {d: dims[d] for d in self.scope_dims}
            skey = _scope_key(scope)
            scopes[skey] = scope
            start = _epoch_s(w.start)
            rolled[(start, skey)] = rolled.get((start, skey), Decimal(0)) + w.cost_usd
        out: list[AlertEvent] = []
        for (start, skey), cost in sorted(rolled.items()):
            series = self._costs.setdefault(skey, {})
            series[start] = series.get(start, Decimal(0)) + cost
            newest = max(series)
            for old in [s for s in series if s <= newest - self.span_s]:
                del series[old]
            rate = sum(series.values(), Decimal(0)) * Decimal(3_600) / Decimal(self.span_s)
            for level in self.levels:
                if rate >= level and self.cooldowns.ready(skey, level, start):
                    self.cooldowns.fire(skey, level, start)
                    out.append(self._alert(scopes[skey], level, rate, start))
        return out

    def _alert(
        self, scope: dict[str, str], level: Decimal, rate: Decimal, start: int
    ) -> AlertEvent:
        tenant = scope["tenant"]
        rest = {k: v for k, v in scope.items() if k != "tenant"}
        end = _at(start + self.window_s)
        where = ", ".join(f"{k}={v}" for k, v in sorted(scope.items()))
        rate_q = rate.quantize(Decimal("0.01"))
        return AlertEvent.build(
            kind="spend_rate",
            tenant=tenant,
            scope=rest,
            severity="warning",
            title=f"Spend rate {rate_q} USD/h for {where} (threshold {level} USD/h)",
            text=(
                f"Cost over the hour ending {end.isoformat()} was {rate} USD, above the "
                f"{level} USD/h threshold."
            ),
            data={
                "value": str(rate),
                "usd_per_hour": str(rate),
                "threshold": str(level),
                "window_end": end.isoformat(),
            },
            ts=end,
            key=(str(level), start),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "costs": {
                k: {str(s): str(c) for s, c in series.items()} for k, series in self._costs.items()
            },
            "fired": dict(self.cooldowns.fired),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._costs = {
            k: {int(s): Decimal(c) for s, c in series.items()}
            for k, series in state["costs"].items()
        }
        self.cooldowns.fired = {k: int(v) for k, v in state["fired"].items()}


class UnpricedCostEvaluator:
    """Calls to unpriced models per window, per (tenant, model).

    Unpriced calls have an unknown cost (never a silent $0); this makes them
    visible. Fires once per (tenant, model, threshold) per ``cooldown_s``.
    """

    kind: AlertKind = "unpriced_cost"

    def __init__(
        self, levels: Iterable[Decimal] = (DEFAULT_UNPRICED_THRESHOLD,), *, cooldown_s: int = 3_600
    ) -> None:
        self.levels = _check_levels(levels)
        self.cooldowns = _Cooldowns(cooldown_s)

    def observe(self, windows: Iterable[WindowAgg]) -> list[AlertEvent]:
        rolled: dict[tuple[int, str, str], int] = {}
        ends: dict[int, datetime] = {}
        for w in windows:
            if w.unpriced_calls:
                start = _epoch_s(w.start)
                ends[start] = w.end
                slot = (start, w.key.tenant, w.key.model)
                rolled[slot] = rolled.get(slot, 0) + w.unpriced_calls
        out: list[AlertEvent] = []
        for (start, tenant, model), calls in sorted(rolled.items()):
            skey = _scope_key({"tenant": tenant, "model": model})
            for level in self.levels:
                if calls >= level and self.cooldowns.ready(skey, level, start):
                    self.cooldowns.fire(skey, level, start)
                    out.append(
                        AlertEvent.build(
                            kind="unpriced_cost",
                            tenant=tenant,
                            scope={"model": model},
                            severity="warning",
                            title=f"{calls} calls to unpriced model {model!r} for {tenant}",
                            text=(
                                f"{calls} calls in the window starting {_at(start).isoformat()} "
                                f"used model {model!r}, which has no price: their cost is "
                                "unknown. Add a price override or alias."
                            ),
                            data={
                                "value": calls,
                                "calls": calls,
                                "threshold": str(level),
                                "model": model,
                                "window_start": _at(start).isoformat(),
                            },
                            ts=ends[start],
                            key=(str(level), start),
                        )
                    )
        return out

    def to_state(self) -> dict[str, Any]:
        return {"fired": dict(self.cooldowns.fired)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.cooldowns.fired = {k: int(v) for k, v in state["fired"].items()}


class DlqRateEvaluator:
    """Dead-lettered events per minute (system-wide: ``tenant`` is '').

    Feed it one count per closed minute (``observe(minute_start, count)``).
    Fires once per threshold per ``cooldown_s``.
    """

    kind: AlertKind = "dlq_rate"

    def __init__(self, levels: Iterable[Decimal], *, cooldown_s: int = 900) -> None:
        self.levels = _check_levels(levels)
        self.cooldowns = _Cooldowns(cooldown_s)

    def observe(
        self, minute_start: datetime, count: int, source_topic: str = ""
    ) -> list[AlertEvent]:
        start = _epoch_s(minute_start)
        out: list[AlertEvent] = []
        for level in self.levels:
            if count >= level and self.cooldowns.ready(source_topic, level, start):
                self.cooldowns.fire(source_topic, level, start)
                out.append(
                    AlertEvent.build(
                        kind="dlq_rate",
                        tenant="",
                        scope={"source_topic": source_topic} if source_topic else {},
                        severity="critical",
                        title=f"{count} events dead-lettered in one minute (threshold {level})",
                        text=(
                            f"{count} events went to the DLQ in the minute starting "
                            f"{_at(start).isoformat()}: producers may be sending invalid events."
                        ),
                        data={
                            "value": count,
                            "per_minute": count,
                            "threshold": str(level),
                            "minute_start": _at(start).isoformat(),
                        },
                        ts=_at(start + 60),
                        key=(str(level), start),
                    )
                )
        return out

    def to_state(self) -> dict[str, Any]:
        return {"fired": dict(self.cooldowns.fired)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.cooldowns.fired = {k: int(v) for k, v in state["fired"].items()}
