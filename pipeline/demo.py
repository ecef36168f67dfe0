"""Synthetic but realistic usage traffic, for the demo, tests and benchmarks.

Deterministic for a seed. Several tenants with teams, users and features; a model
mix across OpenAI, Anthropic and Google with per-feature token distributions
(log-normal prompts, shorter completions), prompt-cache hits (reads) and writes,
reasoning tokens on reasoning models, a few errors, and — on request — a share
of duplicates (a resent event with the same event_id and ts) and malformed
events (each of a different kind), which the pipeline must DLQ or dedup.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# (provider, model, weight, reasoning?, supports prompt caching?)
MODELS: tuple[tuple[str, str, float, bool, bool], ...] = (
    ("openai", "gpt-4o-mini", 0.24, False, True),
    ("openai", "gpt-4o", 0.12, False, True),
    ("openai", "gpt-4.1", 0.08, False, True),
    ("openai", "o4-mini", 0.06, True, True),
    ("openai", "gpt-5", 0.04, True, True),
    ("anthropic", "claude-sonnet-4-5", 0.14, False, True),
    ("anthropic", "claude-haiku-4-5", 0.10, False, True),
    ("anthropic", "claude-opus-4-1", 0.02, False, True),
    ("google", "gemini-2.5-flash", 0.12, True, False),
    ("google", "gemini-2.5-pro", 0.04, True, False),
    ("openai", "ft:gpt-4o-mini:acme:support:9x", 0.02, False, False),  # unpriced on purpose
    ("mistral", "mistral-large-latest", 0.02, False, False),
)

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
TEAMS = ("search", "support", "growth", "platform")
# feature -> (median prompt tokens, median completion tokens, team)
FEATURES: dict[str, tuple[int, int, str]] = {
    "chat": (1800, 350, "growth"),
    "answer-synthesis": (6500, 600, "search"),
    "ticket-triage": (2400, 120, "support"),
    "summarize-thread": (9000, 400, "support"),
    "code-review": (12000, 900, "platform"),
    "autocomplete": (600, 40, "platform"),
}

MALFORMED_KINDS = (
    "bad_json",
    "negative_tokens",
    "missing_tenant",
    "missing_model",
    "string_tokens",
    "naive_ts",
    "cache_over_input",
)


@dataclass
class DemoConfig:
    """How much and what kind of traffic to make."""

    seed: int = 7
    start: datetime | None = None  # first event time; default: now - span
    span: timedelta = timedelta(hours=1)
    duplicate_share: float = 0.0
    malformed_share: float = 0.0
    users_per_tenant: int = 40


class DemoTraffic:
    """A deterministic generator of usage events (dicts in the UsageEvent v1 shape)."""

    def __init__(self, config: DemoConfig | None = None) -> None:
        self.config = config or DemoConfig()
        self.rng = random.Random(self.config.seed)
        self._weights = [m[2] for m in MODELS]
        self.start = self.config.start or datetime.now(UTC) - self.config.span

    def _tokens(self, median: int, sigma: float) -> int:
        return max(1, int(self.rng.lognormvariate(0, sigma) * median))

    def event(self, i: int, n: int) -> dict[str, Any]:
        """The i-th of n valid events (timestamps spread evenly over the span)."""
        rng = self.rng
        provider, model, _, reasoning, caching = rng.choices(MODELS, self._weights)[0]
        tenant = rng.choice(TENANTS)
        feature = rng.choice(list(FEATURES))
        prompt_median, completion_median, team = FEATURES[feature]
        input_tokens = self._tokens(prompt_median, 0.6)
        output_tokens = self._tokens(completion_median, 0.7)
        cache_read = cache_write = reasoning_tokens = 0
        if caching and input_tokens >= 1024:
            roll = rng.random()
            if roll < 0.45:  # cache hit on a shared prefix
                cache_read = int(input_tokens * rng.uniform(0.5, 0.9))
            elif roll < 0.55 and provider == "anthropic":  # explicit cache write
                cache_write = int(input_tokens * rng.uniform(0.5, 0.9))
        if reasoning:
            reasoning_tokens = self._tokens(max(64, completion_median * 2), 0.8)
            output_tokens += reasoning_tokens
        ts = self.start + self.config.span * (i / max(1, n))
        user = f"{tenant}-u{rng.randrange(self.config.users_per_tenant):03d}"
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "tenant": tenant,
            "user": user,
            "team": team,
            "feature": feature,
            "api_key_id": f"{tenant}-key-{rng.randrange(3)}",
            "provider": provider,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "reasoning_tokens": reasoning_tokens,
            "request_id": f"req_{rng.getrandbits(48):012x}",
            "latency_ms": int(200 + output_tokens * rng.uniform(8, 25)),
            "status": "error" if rng.random() < 0.01 else "ok",
        }

    def malformed(self, kind: str) -> Any:
        """One malformed event of ``kind`` (``bad_json`` returns bytes that are not JSON)."""
        base = self.event(0, 1)
        if kind == "bad_json":
            return b'{"event_id": "broken", "tenant": '
        if kind == "negative_tokens":
            base["output_tokens"] = -12
        elif kind == "missing_tenant":
            del base["tenant"]
        elif kind == "missing_model":
            del base["model"]
        elif kind == "string_tokens":
            base["input_tokens"] = "1200"
        elif kind == "naive_ts":
            base["ts"] = base["ts"].replace("Z", "")
        elif kind == "cache_over_input":
            base["cache_read_tokens"] = base["input_tokens"] + 10
        return base

    def stream(self, n: int) -> Iterator[tuple[str, Any]]:
        """Yield ``n`` valid events plus the configured duplicates and malformed items.

        Items are ``("event", dict)``, ``("duplicate", dict)`` (an exact resend of an
        earlier event) or ``("malformed", dict | bytes)``.
        """
        recent: list[dict[str, Any]] = []
        cfg = self.config
        kinds = itertools.cycle(MALFORMED_KINDS)
        for i in range(n):
            ev = self.event(i, n)
            yield "event", ev
            recent.append(ev)
            if len(recent) > 1000:
                recent = recent[-500:]
            if cfg.duplicate_share and self.rng.random() < cfg.duplicate_share:
                yield "duplicate", dict(self.rng.choice(recent))
            if cfg.malformed_share and self.rng.random() < cfg.malformed_share:
                yield "malformed", self.malformed(next(kinds))


def encode_batch(items: list[Any]) -> bytes:
    """A ``usage.events`` message value holding many events (a JSON array)."""
    return json.dumps(items, separators=(",", ":")).encode()
