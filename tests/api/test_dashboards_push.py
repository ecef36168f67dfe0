"""`tokenpipe dashboards push` against a stand-in Grafana: a second push updates, not duplicates."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from dashboards.constants import DATASOURCE_TYPE, DATASOURCE_UID
from pipeline.cli import dashboards as cli_dashboards
from pipeline.errors import UserError
from tests.api.grafana_standin import grafana_standin

TOKEN = "glsa_test_token"


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(cli_dashboards.app, name="dashboards")
    return root


def test_two_pushes_leave_one_datasource_one_folder_n_dashboards() -> None:
    files = sorted(cli_dashboards.JSON_DIR.glob("*.json"))
    uids = {json.loads(p.read_text())["uid"] for p in files}
    assert len(uids) == len(files) >= 1
    runner = CliRunner()
    with grafana_standin(TOKEN) as (url, state):
        args = ["dashboards", "push", "--grafana-url", url, "--token", TOKEN]
        first = runner.invoke(_cli(), args)
        assert first.exit_code == 0, first.output
        assert "datasource created, folder created" in first.output
        second = runner.invoke(_cli(), [*args, "--clickhouse-host", "ch2"])
        assert second.exit_code == 0, second.output
        assert "datasource updated, folder updated" in second.output

        assert list(state.datasources) == [DATASOURCE_UID]
        ds = state.datasources[DATASOURCE_UID]
        assert ds["type"] == DATASOURCE_TYPE and ds["jsonData"]["host"] == "ch2"
        assert ds["version"] == 2
        assert list(state.folders) == ["tokenpipe"]
        assert set(state.dashboards) == uids
        assert all(d["folderUid"] == "tokenpipe" for d in state.dashboards.values())
        assert all(d["version"] == 2 for d in state.dashboards.values())
        posts = [p for m, p in state.requests if m == "POST" and p.endswith("/dashboards/db")]
        assert len(posts) == 2 * len(uids)


def test_bad_token_is_a_user_error() -> None:
    with grafana_standin(TOKEN) as (url, state):
        result = CliRunner().invoke(
            _cli(), ["dashboards", "push", "--grafana-url", url, "--token", "wrong"]
        )
        assert isinstance(result.exception, UserError)
        assert "Unauthorized" in str(result.exception)
        assert state.datasources == {} and state.dashboards == {}
