"""Local price overrides: model aliases, custom model prices and negotiated discounts.

The file is YAML (see ``deploy/prices/overrides.example.yaml``)::

    aliases:                      # name used by apps -> provider/model in the catalog
      chat-default: openai/gpt-4o
    models:                       # prices for models the catalog lacks, or replacing it
      - provider: acme
        model: acme-large
        match: [acme-large-2025-01]      # optional extra names for the same model
        prices:                          # one mapping, or a list of periods
          - valid_from: 2025-01-01       # optional; UTC date or tz-aware ISO time
            input: 1.00                  # USD per million tokens
            cache_read: 0.10             # optional, default = input
            cache_write: 1.25            # optional, default = input
            output: 4.00
            reasoning: 4.00              # optional, default = output
    discounts:                    # multiplier on every price of a provider or a model
      - provider: openai
        multiplier: 0.8
        valid_from: 2025-06-01           # optional

Numbers are read from the YAML text as ``Decimal`` (never through float). Any error
raises :class:`~pipeline.errors.ConfigError` naming the file, line and field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ConfigError

#: A multiplier above this is almost certainly a typo (8 for 0.8), so it is refused.
MAX_MULTIPLIER = Decimal(2)


@dataclass(frozen=True, slots=True)
class OverridePrice:
    """One price period of a custom model, USD per million tokens."""

    valid_from: datetime | None
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CustomModel:
    """A model priced by the overrides file; ``names`` are lower-case refs that match it."""

    provider: str
    model: str
    names: frozenset[str]
    prices: tuple[OverridePrice, ...]  # sorted by valid_from, None (always) first


@dataclass(frozen=True, slots=True)
class Discount:
    """A price multiplier for a provider (``model`` None) or one model of a provider."""

    provider: str
    model: str | None
    multiplier: Decimal
    valid_from: datetime | None


@dataclass(frozen=True, slots=True)
class Overrides:
    """The parsed overrides file; ``sha256`` identifies its exact content."""

    aliases: dict[str, tuple[str, str]]
    models: tuple[CustomModel, ...]
    discounts: tuple[Discount, ...]
    sha256: str
    path: str

    @property
    def version(self) -> str:
        """Short content hash, used as ``price_version`` of override prices."""
        return f"overrides sha256:{self.sha256[:12]}"


class _Reader:
    """Walks the YAML node tree so that every error can name its line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Node | None, where: str, message: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConfigError(f"{self.path}{line}: {where}: {message}")

    def mapping(self, node: Node, where: str, allowed: set[str]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, where, "expected a mapping")
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.fail(key_node, where, "keys must be plain strings")
            key = str(key_node.value)
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(key_node, where, f"unknown field {key!r} (allowed: {known})")
            if key in out:
                raise self.fail(key_node, where, f"duplicate field {key!r}")
            out[key] = value_node
        return out

    def sequence(self, node: Node, where: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, where, "expected a list")
        return list(node.value)

    def string(self, node: Node, where: str) -> str:
        if not isinstance(node, ScalarNode) or not str(node.value).strip():
            raise self.fail(node, where, "expected a non-empty string")
        return str(node.value).strip()

    def decimal(self, node: Node, where: str) -> Decimal:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, where, "expected a number")
        try:
            value = Decimal(str(node.value).replace("_", ""))
        except InvalidOperation:
            raise self.fail(node, where, f"expected a number, got {node.value!r}") from None
        if not value.is_finite() or value < 0:
            raise self.fail(node, where, f"expected a finite non-negative number, got {node.value}")
        return value

    def moment(self, node: Node, where: str) -> datetime:
        text = self.string(node, where)
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(
                node, where, f"expected YYYY-MM-DD or an ISO time, got {text!r}"
            ) from None
        if moment.tzinfo is None:
            raise self.fail(node, where, f"time {text!r} needs a UTC offset (e.g. +00:00)")
        return moment.astimezone(UTC)

    def provider_model(self, node: Node, where: str) -> tuple[str, str]:
        text = self.string(node, where)
        provider, sep, model = text.partition("/")
        if not sep or not provider or not model:
            raise self.fail(node, where, f"expected 'provider/model', got {text!r}")
        return provider.strip().lower(), model.strip()


_PRICE_FIELDS = {"valid_from", "input", "output", "cache_read", "cache_write", "reasoning"}


def _price(reader: _Reader, node: Node, where: str) -> OverridePrice:
    fields = reader.mapping(node, where, _PRICE_FIELDS)
    for required in ("input", "output"):
        if required not in fields:
            raise reader.fail(node, where, f"missing field {required!r}")

    def opt(name: str) -> Decimal | None:
        return reader.decimal(fields[name], f"{where}.{name}") if name in fields else None

    return OverridePrice(
        valid_from=reader.moment(fields["valid_from"], f"{where}.valid_from")
        if "valid_from" in fields
        else None,
        input=reader.decimal(fields["input"], f"{where}.input"),
        output=reader.decimal(fields["output"], f"{where}.output"),
        cache_read=opt("cache_read"),
        cache_write=opt("cache_write"),
        reasoning=opt("reasoning"),
    )


def _model(reader: _Reader, node: Node, where: str) -> CustomModel:
    fields = reader.mapping(node, where, {"provider", "model", "match", "prices"})
    for required in ("provider", "model", "prices"):
        if required not in fields:
            raise reader.fail(node, where, f"missing field {required!r}")
    provider = reader.string(fields["provider"], f"{where}.provider").lower()
    model = reader.string(fields["model"], f"{where}.model")
    names = {model.lower()}
    if "match" in fields:
        for i, item in enumerate(reader.sequence(fields["match"], f"{where}.match")):
            names.add(reader.string(item, f"{where}.match[{i}]").lower())
    prices_node = fields["prices"]
    if isinstance(prices_node, SequenceNode):
        items = reader.sequence(prices_node, f"{where}.prices")
        if not items:
            raise reader.fail(prices_node, f"{where}.prices", "needs at least one price")
        prices = [_price(reader, item, f"{where}.prices[{i}]") for i, item in enumerate(items)]
    else:
        prices = [_price(reader, prices_node, f"{where}.prices")]
    starts = [p.valid_from for p in prices]
    if starts.count(None) > 1 or len(set(starts)) != len(starts):
        raise reader.fail(prices_node, f"{where}.prices", "two periods have the same valid_from")
    if None in starts and starts.index(None) != 0:
        # A period without valid_from means "always": it can only be the first one.
        raise reader.fail(
            prices_node, f"{where}.prices", "only the first period may omit valid_from"
        )
    prices.sort(key=lambda p: (p.valid_from is not None, p.valid_from or datetime.min))
    return CustomModel(provider, model, frozenset(names), tuple(prices))


def _discount(reader: _Reader, node: Node, where: str) -> Discount:
    fields = reader.mapping(node, where, {"provider", "model", "multiplier", "valid_from"})
    for required in ("provider", "multiplier"):
        if required not in fields:
            raise reader.fail(node, where, f"missing field {required!r}")
    multiplier = reader.decimal(fields["multiplier"], f"{where}.multiplier")
    if not 0 < multiplier <= MAX_MULTIPLIER:
        raise reader.fail(
            fields["multiplier"],
            f"{where}.multiplier",
            f"must be > 0 and <= {MAX_MULTIPLIER} (0.8 = 20% off), got {multiplier}",
        )
    return Discount(
        provider=reader.string(fields["provider"], f"{where}.provider").lower(),
        model=reader.string(fields["model"], f"{where}.model").lower()
        if "model" in fields
        else None,
        multiplier=multiplier,
        valid_from=reader.moment(fields["valid_from"], f"{where}.valid_from")
        if "valid_from" in fields
        else None,
    )


def parse_overrides(text: str, path: str = "<overrides>") -> Overrides:
    """Parse overrides YAML text; raises ConfigError naming line and field on any problem."""
    reader = _Reader(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {exc}") from None
    aliases: dict[str, tuple[str, str]] = {}
    models: list[CustomModel] = []
    discounts: list[Discount] = []
    if root is not None:
        top = reader.mapping(root, "top level", {"version", "aliases", "models", "discounts"})
        if "version" in top and reader.string(top["version"], "version") != "1":
            raise reader.fail(top["version"], "version", "only version 1 is supported")
        if "aliases" in top and not _is_null(top["aliases"]):
            alias_node = top["aliases"]
            if not isinstance(alias_node, MappingNode):
                raise reader.fail(alias_node, "aliases", "expected a mapping alias: provider/model")
            for key_node, value_node in alias_node.value:
                alias = reader.string(key_node, "aliases").lower()
                if alias in aliases:
                    raise reader.fail(key_node, f"aliases.{alias}", "duplicate alias")
                aliases[alias] = reader.provider_model(value_node, f"aliases.{alias}")
        if "models" in top and not _is_null(top["models"]):
            for i, item in enumerate(reader.sequence(top["models"], "models")):
                models.append(_model(reader, item, f"models[{i}]"))
            seen: dict[tuple[str, str], int] = {}
            for i, m in enumerate(models):
                for name in m.names:
                    if (m.provider, name) in seen:
                        raise reader.fail(
                            None,
                            f"models[{i}]",
                            f"name {name!r} of provider {m.provider!r} is already used by "
                            f"models[{seen[(m.provider, name)]}]",
                        )
                    seen[(m.provider, name)] = i
        if "discounts" in top and not _is_null(top["discounts"]):
            for i, item in enumerate(reader.sequence(top["discounts"], "discounts")):
                discounts.append(_discount(reader, item, f"discounts[{i}]"))
            keys = [(d.provider, d.model, d.valid_from) for d in discounts]
            if len(set(keys)) != len(keys):
                raise reader.fail(
                    None, "discounts", "two discounts have the same scope and valid_from"
                )
    return Overrides(
        aliases=aliases,
        models=tuple(models),
        discounts=tuple(discounts),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        path=path,
    )


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def load_overrides(path: Path) -> Overrides:
    """Read and parse an overrides file; a missing or unreadable file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"price overrides file {path}: cannot read it: {exc}") from None
    return parse_overrides(text, str(path))
