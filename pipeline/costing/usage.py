"""Token counts of one LLM call, in tokenpipe's canonical convention.

The convention is the one OpenTelemetry GenAI and genai-prices use, and it is the
only one used inside tokenpipe:

* ``input_tokens`` is the TOTAL input, cache reads and cache writes included;
* ``output_tokens`` is the TOTAL output, reasoning ("thinking") tokens included;
* ``cache_read_tokens``, ``cache_write_tokens`` are parts of ``input_tokens`` and
  ``reasoning_tokens`` is a part of ``output_tokens``: they are never added on top.

Provider responses that count differently (Anthropic reports cache tokens outside
``input_tokens``; Gemini reports thoughts outside ``candidatesTokenCount``) are
converted in :mod:`pipeline.costing.extract`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UserError

_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one call; see the module docstring for what each count includes.

    The constructor validates (non-negative ``int``s, parts not above their totals) and
    raises :class:`~pipeline.errors.UserError` naming the offending field.
    """

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            # bool is an int subclass; True tokens is always a bug upstream.
            if type(value) is not int:
                raise UserError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
            if value < 0:
                raise UserError(f"{name} must not be negative, got {value}")
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise UserError(
                "cache_read_tokens + cache_write_tokens "
                f"({self.cache_read_tokens} + {self.cache_write_tokens}) exceed input_tokens "
                f"({self.input_tokens}); input_tokens must be the total input including cache "
                "reads and writes"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise UserError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens "
                f"({self.output_tokens}); output_tokens must include reasoning tokens"
            )

    @classmethod
    def trusted(
        cls,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> TokenUsage:
        """Build WITHOUT validation, for counts a validated ``UsageEvent`` already vouches for.

        The stream prices tens of thousands of events a second; re-checking what the
        schema has just checked was a measurable share of that (see bench/).
        """
        obj = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(obj, "input_tokens", input_tokens)
        setattr_(obj, "output_tokens", output_tokens)
        setattr_(obj, "cache_read_tokens", cache_read_tokens)
        setattr_(obj, "cache_write_tokens", cache_write_tokens)
        setattr_(obj, "reasoning_tokens", reasoning_tokens)
        return obj

    @classmethod
    def checked(
        cls,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> TokenUsage:
        """Same as the constructor (which always validates); kept as an explicit spelling."""
        return cls(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens
        )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens that were neither read from nor written to a prompt cache."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        """Input plus output (reasoning and cache counts are already inside those)."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: object) -> TokenUsage:
        if not isinstance(other, TokenUsage):
            return NotImplemented
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )
