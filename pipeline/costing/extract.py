"""Read token usage out of provider responses, into the canonical convention.

Each provider counts differently; the result is always a :class:`TokenUsage` whose
``input_tokens`` includes cache reads/writes and whose ``output_tokens`` includes
reasoning (see :mod:`pipeline.costing.usage`):

* OpenAI (chat completions, the final streamed chunk, Responses API): cached tokens
  are already inside ``prompt_tokens`` / ``input_tokens``; reasoning tokens inside
  ``completion_tokens`` / ``output_tokens``. Nothing is added.
* Anthropic: ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``, so canonical input = input + cache read + cache write.
* Google Gemini: ``promptTokenCount`` includes ``cachedContentTokenCount``, but
  ``thoughtsTokenCount`` is OUTSIDE ``candidatesTokenCount``, so canonical output =
  candidates + thoughts (and tool-use prompt tokens are added to input).

The field mappings are genai-prices' own extractors (``Provider.extract_usage``), which
encode exactly these rules; this module picks the API flavour, accepts SDK objects as
well as dicts, unwraps streaming envelopes and accumulates Anthropic's streamed
``message_delta`` counts, which genai-prices does not do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genai_prices import data_snapshot
from genai_prices import types as gp

from pipeline.costing.usage import TokenUsage
from pipeline.errors import UserError

__all__ = [
    "AnthropicStreamAccumulator",
    "Extracted",
    "from_anthropic",
    "from_google",
    "from_openai",
]


@dataclass(frozen=True, slots=True)
class Extracted:
    """Usage of one response, plus the model name it reports (if any) and the provider."""

    usage: TokenUsage
    model: str | None
    provider: str


def _as_mapping(obj: Any, what: str, *, by_alias: bool = False) -> Mapping[str, Any]:
    """A dict view of a response: dicts as they are, SDK (pydantic) objects dumped."""
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        data = dump(by_alias=True) if by_alias else dump()
        if isinstance(data, Mapping):
            return data
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return data
    raise UserError(f"{what}: expected a dict or an SDK response object, got {type(obj).__name__}")


def _provider(provider_id: str) -> gp.Provider:
    providers = data_snapshot.get_snapshot().providers
    provider = data_snapshot.find_provider_by_id(providers, provider_id)
    if provider is None:  # pragma: no cover - the bundled catalog always has these
        raise RuntimeError(f"genai-prices has no provider {provider_id!r}")
    return provider


def _count(value: object, field: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{what}: {field} is not a number: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise UserError(f"{what}: {field} is not a whole number: {value!r}")
        value = int(value)
    return value


def _extract(data: Mapping[str, Any], provider_id: str, flavor: str, what: str) -> Extracted:
    try:
        model, usage = _provider(provider_id).extract_usage(data, api_flavor=flavor)
    except ValueError as exc:
        raise UserError(f"{what}: no usage found: {exc}") from None

    def get(key: str) -> int:
        return _count(usage.reported_value(key), key, what)

    return Extracted(
        usage=TokenUsage(
            input_tokens=get("input_tokens"),
            output_tokens=get("output_tokens"),
            cache_read_tokens=get("cache_read_tokens"),
            cache_write_tokens=get("cache_write_tokens"),
            reasoning_tokens=get("output_reasoning_tokens"),
        ),
        model=model,
        provider=provider_id,
    )


def from_openai(obj: Any) -> Extracted:
    """Usage of an OpenAI chat completion, final streamed chunk or Responses API result.

    Also accepts a Responses streaming ``response.completed`` event (the response is
    unwrapped) and a bare ``usage`` object. A chunk without usage (every streamed chunk
    but the last, and only with ``stream_options={"include_usage": True}``) is an error.
    """
    what = "OpenAI response"
    data = _as_mapping(obj, what)
    if isinstance(data.get("response"), Mapping) and str(data.get("type", "")).startswith(
        "response."
    ):
        data = data["response"]
    if "usage" not in data and ("prompt_tokens" in data or "input_tokens" in data):
        data = {"usage": data}
    usage = data.get("usage")
    if not isinstance(usage, Mapping):
        raise UserError(
            f"{what}: no usage in it (streamed chunks carry usage only in the final chunk, "
            "and only with stream_options={'include_usage': True})"
        )
    flavor = "chat" if "prompt_tokens" in usage else "responses"
    return _extract(data, "openai", flavor, what)


def from_anthropic(obj: Any) -> Extracted:
    """Usage of an Anthropic Messages API response (cache tokens added into input)."""
    what = "Anthropic response"
    data = _as_mapping(obj, what)
    if "usage" not in data and "input_tokens" in data:
        data = {"usage": data}
    if not isinstance(data.get("usage"), Mapping):
        raise UserError(f"{what}: no usage in it")
    return _extract(data, "anthropic", "default", what)


def from_google(obj: Any) -> Extracted:
    """Usage of a Gemini ``generateContent`` response (thoughts added into output).

    SDK objects (google-genai) are dumped with their camelCase aliases, the names of the
    REST API that genai-prices' extractor reads.
    """
    what = "Gemini response"
    data = _as_mapping(obj, what, by_alias=True)
    if "usageMetadata" not in data and "usage_metadata" in data:
        raise UserError(f"{what}: snake_case keys; pass the SDK object or the REST JSON")
    if not isinstance(data.get("usageMetadata"), Mapping):
        raise UserError(f"{what}: no usageMetadata in it")
    return _extract(data, "google", "default", what)


class AnthropicStreamAccumulator:
    """Collects usage over an Anthropic streaming response.

    ``message_start`` carries the input-side counts (and ``output_tokens`` so far);
    each ``message_delta`` carries CUMULATIVE counts (Anthropic's streaming docs:
    "The token counts shown in the usage field of the message_delta event are
    cumulative"), so a later value replaces the earlier one; it is never added.
    Other events are ignored. Feed every event to :meth:`add`, then call :meth:`result`.
    """

    def __init__(self) -> None:
        self._usage: dict[str, Any] = {}
        self._model: str | None = None
        self._started = False

    def add(self, event: Any) -> None:
        """Take one streamed event (dict or SDK event object)."""
        data = _as_mapping(event, "Anthropic stream event")
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            if not isinstance(message, Mapping):
                raise UserError("Anthropic stream event: message_start without message")
            self._model = message.get("model") or self._model
            self._usage = {k: v for k, v in (message.get("usage") or {}).items() if v is not None}
            self._started = True
        elif kind == "message_delta":
            for key, value in (data.get("usage") or {}).items():
                if value is not None:
                    self._usage[key] = value

    def result(self) -> Extracted:
        """Usage of the whole stream; an error when no ``message_start`` was seen."""
        if not self._started:
            raise UserError("Anthropic stream: no message_start event, so no input usage")
        return from_anthropic({"model": self._model, "usage": self._usage})
