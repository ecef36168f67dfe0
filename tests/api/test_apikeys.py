"""API keys: parsing, authorize() rules, and tenant isolation over real HTTP."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from pipeline.apikeys import AuthError, KeyRing, add_key, authorize, hash_key, main
from pipeline.app import create_app
from pipeline.config import Settings
from pipeline.errors import ConfigError
from tests.api.helpers import insert_two_tenants

ACME_KEY, GLOBEX_KEY, ADMIN_KEY = "acme-secret", "globex-secret", "admin-secret"


def ring() -> KeyRing:
    return KeyRing.from_mapping(
        {
            "keys": [
                {"sha256": hash_key(ACME_KEY), "tenant": "acme", "name": "acme app"},
                {"sha256": hash_key(GLOBEX_KEY), "tenant": "globex"},
                {"sha256": hash_key(ADMIN_KEY), "tenant": "*"},
            ]
        }
    )


def test_scoped_key_always_gets_its_tenant() -> None:
    r = ring()
    assert authorize(r, f"Bearer {ACME_KEY}", "10.1.2.3", None) == "acme"
    assert authorize(r, f"Bearer {ACME_KEY}", "10.1.2.3", "acme") == "acme"
    with pytest.raises(AuthError) as err:
        authorize(r, f"Bearer {ACME_KEY}", "127.0.0.1", "globex")
    assert err.value.status == 403 and "scoped to tenant 'acme'" in err.value.reason


def test_admin_and_bad_keys() -> None:
    r = ring()
    assert authorize(r, f"Bearer {ADMIN_KEY}", "10.0.0.1", None) is None
    assert authorize(r, f"bearer {ADMIN_KEY}", "10.0.0.1", "globex") == "globex"
    for header in (None, "", "Basic abc", "Bearer nope", f"Bearer {hash_key(ACME_KEY)}"):
        with pytest.raises(AuthError) as err:
            authorize(r, header, "127.0.0.1", None)
        assert err.value.status == 401


def test_no_keys_file_is_loopback_only() -> None:
    open_ring = KeyRing.open_access()
    assert authorize(open_ring, None, "127.0.0.1", "acme") == "acme"
    assert authorize(open_ring, None, "::1", None) is None
    for remote in ("10.0.0.8", "192.168.1.2", None, "garbage"):
        with pytest.raises(AuthError) as err:
            authorize(open_ring, None, remote, None)
        assert err.value.status == 401 and "loopback" in err.value.reason


def test_keys_file_round_trip_never_stores_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    key = add_key(path, "acme", "grafana")
    add_key(path, "*")
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    loaded = KeyRing.load(path)
    assert authorize(loaded, f"Bearer {key}", "10.0.0.1", None) == "acme"
    # the plain mapping form
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({hash_key("k"): "globex"}))
    assert authorize(KeyRing.load(plain), "Bearer k", "10.0.0.1", None) == "globex"
    assert main(["new", "--tenant", "globex", "--file", str(path)]) == 0
    assert len(yaml.safe_load(path.read_text())["keys"]) == 3


@pytest.mark.parametrize(
    "data",
    [
        [1, 2],
        {"keys": [{"sha256": "abc", "tenant": "acme"}]},
        {"keys": [{"tenant": "acme"}]},
        {"keys": [{"sha256": "a" * 64, "tenant": ""}]},
    ],
)
def test_bad_keys_files(data: Any) -> None:
    with pytest.raises(ConfigError):
        KeyRing.from_mapping(data)


def _get_all(app: Any, requests: list[tuple[str, dict[str, str]]]) -> list[tuple[int, Any]]:
    async def run() -> list[tuple[int, Any]]:
        client = TestClient(TestServer(app.web.web_app))
        await client.start_server()
        try:
            out = []
            for path, headers in requests:
                resp = await client.get(path, headers=headers)
                out.append((resp.status, await resp.json()))
            return out
        finally:
            await client.close()

    return asyncio.run(run())


def test_http_isolation_between_two_tenants(store, tmp_path: Path) -> None:
    insert_two_tenants(store)
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {"sha256": hash_key(ACME_KEY), "tenant": "acme"},
                    {"sha256": hash_key(GLOBEX_KEY), "tenant": "globex"},
                    {"sha256": hash_key(ADMIN_KEY), "tenant": "*"},
                ]
            }
        )
    )
    app = create_app(Settings(data_dir=tmp_path, api_keys_file=keys_file), store)
    url = "/api/analytics/tokens?range=30d"
    acme = {"Authorization": f"Bearer {ACME_KEY}"}
    globex = {"Authorization": f"Bearer {GLOBEX_KEY}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    results = _get_all(
        app,
        [
            (url, acme),
            (url, globex),
            (url + "&tenant=globex", acme),
            (url + "&tenant=acme", acme),
            (url, admin),
            (url + "&tenant=globex", admin),
            (url, {}),
            (url, {"Authorization": "Bearer wrong"}),
            ("/api/analytics/tokens?range=nope", acme),
        ],
    )
    status = [s for s, _ in results]
    assert status == [200, 200, 403, 200, 200, 200, 401, 401, 400]
    cost = [Decimal(b["summary"]["cost_usd"]) if s == 200 else None for s, b in results]
    assert cost[0] == Decimal("6.5") and results[0][1]["query"]["tenant"] == "acme"
    assert cost[1] == Decimal("300") and results[1][1]["query"]["tenant"] == "globex"
    assert {m["model"] for m in results[1][1]["models"]} == {"gpt-4o"}
    assert "scoped to tenant 'acme'" in results[2][1]["error"]
    assert cost[3] == Decimal("6.5")
    assert cost[4] == Decimal("306.5") and cost[5] == Decimal("300")


def test_http_open_on_loopback_without_keys(store, tmp_path: Path) -> None:
    insert_two_tenants(store)
    app = create_app(Settings(data_dir=tmp_path), store)
    # no api_keys_file: open, loopback only
    [(status, body)] = _get_all(app, [("/api/analytics/tokens?range=30d&tenant=globex", {})])
    assert status == 200 and Decimal(body["summary"]["cost_usd"]) == Decimal("300")


def test_usage_summary_endpoint_is_tenant_scoped_too(store, tmp_path: Path) -> None:
    insert_two_tenants(store)
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({hash_key(ACME_KEY): "acme"}))
    app = create_app(Settings(data_dir=tmp_path, api_keys_file=keys_file), store)
    acme = {"Authorization": f"Bearer {ACME_KEY}"}
    results = _get_all(
        app,
        [
            ("/v1/usage/summary?by=tenant", acme),
            ("/v1/usage/summary?by=tenant&tenant=globex", acme),
            ("/v1/usage/summary?by=tenant", {}),
        ],
    )
    assert [s for s, _ in results] == [200, 403, 401]
    assert [r["key"] for r in results[0][1]["rows"]] == ["acme"]
