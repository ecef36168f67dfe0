"""Tenant-scoped API keys for the worker's query endpoints.

Keys file (YAML, the ``api_keys_file`` setting). Keys are never stored in clear:
each entry holds the SHA-256 (hex) of a key and the tenant it may read, or ``"*"``
for an admin key that may read every tenant::

    keys:
      - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        tenant: acme
        name: acme grafana          # optional label, shown nowhere but here
      - sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
        tenant: "*"

A plain mapping ``{sha256: tenant}`` is accepted too. ``python -m pipeline.apikeys
new --tenant acme --file keys.yaml`` makes a key, prints it once and appends its hash.

Contract of :func:`authorize`:

* a request carries ``Authorization: Bearer <key>``; an unknown or missing key
  is 401;
* a tenant-scoped key reads its own tenant only: the effective tenant is ALWAYS
  the key's, and asking for another one (``tenant=other``) is 403 with a reason —
  never a silent widening or a silent switch;
* with no keys file configured the API is open, but to loopback clients only
  (127.0.0.0/8, ::1): a worker bound to 0.0.0.0 without keys answers 401 to
  everyone else.

Key lookup is by hash in a dict: the presented key is hashed first, so timing
differences reveal nothing useful about stored keys (finding a key from its hash
is a preimage attack on SHA-256).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

ADMIN = "*"
KEY_PREFIX = "tpk_"


@dataclass(frozen=True)
class Principal:
    """Who is asking: ``tenant`` is a tenant name, or ``None`` for admin/open access."""

    tenant: str | None
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


class AuthError(Exception):
    """The request may not proceed: ``status`` is 401 or 403, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def hash_key(key: str) -> str:
    """SHA-256 hex of a key as written in the keys file."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new random key (256 bits, URL-safe)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRing:
    """Key hashes → principals. An empty ring (no keys file) means loopback-only open access."""

    by_hash: dict[str, Principal]
    configured: bool

    @classmethod
    def open_access(cls) -> KeyRing:
        return cls({}, configured=False)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "keys file") -> KeyRing:
        """Build from parsed YAML (``{"keys": [...]}`` or ``{sha256: tenant}``)."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: top level must be a mapping")
        entries: list[tuple[str, str, str]] = []
        if "keys" in data:
            items = data["keys"] or []
            if not isinstance(items, list):
                raise ConfigError(f"{source}: 'keys' must be a list")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or "sha256" not in item or "tenant" not in item:
                    raise ConfigError(f"{source}: keys[{i}] needs 'sha256' and 'tenant'")
                entries.append(
                    (str(item["sha256"]), str(item["tenant"]), str(item.get("name", "")))
                )
        else:
            entries = [(str(h), str(t), "") for h, t in data.items()]
        by_hash: dict[str, Principal] = {}
        for digest, tenant, name in entries:
            digest = digest.strip().lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(f"{source}: {digest[:16]!r}… is not a SHA-256 hex digest")
            if not tenant:
                raise ConfigError(
                    f"{source}: empty tenant for key {digest[:12]}… (use '*' for admin)"
                )
            by_hash[digest] = Principal(None if tenant == ADMIN else tenant, name)
        return cls(by_hash, configured=True)

    @classmethod
    def load(cls, path: Path | None) -> KeyRing:
        """Read a keys file; ``None`` gives open (loopback-only) access."""
        if path is None:
            return cls.open_access()
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"api keys file {path}: {exc}") from exc
        return cls.from_mapping(data, f"api keys file {path}")

    def lookup(self, key: str) -> Principal | None:
        return self.by_hash.get(hash_key(key))


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authorize(
    ring: KeyRing, authorization: str | None, remote: str | None, requested_tenant: str | None
) -> str | None:
    """The tenant the query MUST be filtered by (None = all tenants), or raise ``AuthError``."""
    requested = requested_tenant or None
    if not ring.configured:
        if not is_loopback(remote):
            raise AuthError(
                401,
                "no API keys are configured (api_keys_file): the usage API answers "
                "loopback clients only",
            )
        return requested
    key = bearer(authorization)
    if key is None:
        raise AuthError(401, "missing 'Authorization: Bearer <key>'")
    principal = ring.lookup(key)
    if principal is None:
        raise AuthError(401, "unknown API key")
    if principal.is_admin:
        return requested
    if requested is not None and requested != principal.tenant:
        raise AuthError(
            403,
            f"this key is scoped to tenant {principal.tenant!r}; it cannot read tenant "
            f"{requested!r} (omit the tenant parameter)",
        )
    return principal.tenant


def authorize_request(ring: KeyRing, request: Any, requested_tenant: str | None) -> str | None:
    """``authorize`` for a web request: its ``Authorization`` header and peer address."""
    return authorize(
        ring,
        request.headers.get("Authorization"),
        getattr(request, "remote", None),
        requested_tenant,
    )


def add_key(path: Path, tenant: str, name: str = "") -> str:
    """Generate a key for ``tenant`` (or ``*``), append its hash to ``path``; return the key."""
    key = generate_key()
    data: dict[str, Any] = {}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
        KeyRing.from_mapping(data, str(path))  # refuse to append to a broken file
    if data and "keys" not in data:
        data = {"keys": [{"sha256": h, "tenant": t} for h, t in data.items()]}
    entry = {"sha256": hash_key(key), "tenant": tenant}
    if name:
        entry["name"] = name
    data.setdefault("keys", []).append(entry)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return key


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.apikeys new --tenant T [--name N] [--file keys.yaml]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.apikeys")
    sub = parser.add_subparsers(dest="cmd", required=True)
    new = sub.add_parser("new", help="make a key, print it once, store only its hash")
    new.add_argument("--tenant", required=True, help="tenant the key may read, or '*' (admin)")
    new.add_argument("--name", default="", help="label kept beside the hash")
    new.add_argument("--file", type=Path, help="keys file to append to (else print the entry)")
    args = parser.parse_args(argv)
    if args.file is not None:
        key = add_key(args.file, args.tenant, args.name)
        print(key)
        print(f"# hash appended to {args.file}; the key is not stored anywhere", file=sys.stderr)
    else:
        key = generate_key()
        print(key)
        entry = {"sha256": hash_key(key), "tenant": args.tenant}
        print(yaml.safe_dump({"keys": [entry]}, sort_keys=False), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
