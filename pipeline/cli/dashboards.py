"""`tokenpipe dashboards push`: create or update the data source, folder and dashboards.

Idempotent by uid: the data source (``DATASOURCE_UID``), the folder
(``FOLDER_UID``) and every dashboard in ``dashboards/json`` (its own ``uid``,
posted with ``overwrite: true``) are created when missing and updated otherwise,
so a second push changes nothing but versions and never duplicates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.constants import DATASOURCE_TYPE, DATASOURCE_UID
from pipeline.errors import UserError

FOLDER_UID = "tokenpipe"
FOLDER_TITLE = "tokenpipe"
DATASOURCE_NAME = "ClickHouse (tokenpipe)"
JSON_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "json"

app = typer.Typer(help="Grafana dashboards.", no_args_is_help=True)


def datasource_body(
    host: str, port: int, protocol: str, username: str, password: str, database: str
) -> dict[str, Any]:
    """The ClickHouse plugin (v4) data source, same settings as deploy/grafana provisioning."""
    body: dict[str, Any] = {
        "name": DATASOURCE_NAME,
        "uid": DATASOURCE_UID,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "isDefault": True,
        "jsonData": {
            "host": host,
            "port": port,
            "protocol": protocol,
            "secure": False,
            "username": username,
            "defaultDatabase": database,
            "dialTimeout": 10,
            "queryTimeout": 60,
        },
    }
    if password:
        body["secureJsonData"] = {"password": password}
    return body


def _missing(exc: GrafanaClientError) -> bool:
    return exc.status_code == 404


def _push_datasource(api: GrafanaApi, datasource: dict[str, Any], done: dict[str, Any]) -> None:
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(datasource)
        done["datasource"] = "created"
    else:
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, datasource)
        done["datasource"] = "updated"


def _push_folder(api: GrafanaApi, done: dict[str, Any]) -> None:
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        done["folder"] = "created"
    else:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        done["folder"] = "updated"


def push(
    api: GrafanaApi, datasource: dict[str, Any] | None, json_dir: Path = JSON_DIR
) -> dict[str, Any]:
    """Create-or-update data source (unless None), folder and dashboards; return what was done."""
    files = sorted(json_dir.glob("*.json"))
    if not files:
        raise UserError(f"no dashboard JSON in {json_dir}")
    done: dict[str, Any] = {"datasource": "skipped", "folder": "", "dashboards": []}
    if datasource is not None:
        _push_datasource(api, datasource, done)
    _push_folder(api, done)
    for path in files:
        model = json.loads(path.read_text())
        if not model.get("uid"):
            raise UserError(f"{path.name}: dashboard has no uid (needed to update, not duplicate)")
        model.pop("id", None)  # id is per Grafana instance; uid identifies the dashboard
        api.dashboard.update_dashboard(
            {
                "dashboard": model,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "tokenpipe dashboards push",
            }
        )
        done["dashboards"].append(model["uid"])
    return done


@app.command("push")
def push_command(
    grafana_url: str = typer.Option(..., "--grafana-url", help="e.g. http://localhost:3000"),
    token: str = typer.Option(
        ..., "--token", envvar="GRAFANA_TOKEN", help="Service account token (Editor or Admin)."
    ),
    ch_host: str = typer.Option(
        "clickhouse", "--clickhouse-host", help="ClickHouse host as Grafana sees it."
    ),
    ch_port: int = typer.Option(8123, "--clickhouse-port"),
    ch_protocol: str = typer.Option("http", "--clickhouse-protocol", help="http or native."),
    ch_user: str = typer.Option("tokenpipe", "--clickhouse-user"),
    ch_password: str = typer.Option("", "--clickhouse-password", envvar="CLICKHOUSE_PASSWORD"),
    ch_database: str = typer.Option("tokenpipe", "--clickhouse-database"),
    json_dir: Path = typer.Option(JSON_DIR, "--dir", help="Folder of dashboard JSON."),
    skip_datasource: bool = typer.Option(
        False, "--skip-datasource", help="Leave the data source alone (provisioned, read-only)."
    ),
) -> None:
    """Create or update the ClickHouse data source, the folder and every dashboard (by uid)."""
    api = GrafanaApi.from_url(grafana_url, credential=token)
    body = datasource_body(ch_host, ch_port, ch_protocol, ch_user, ch_password, ch_database)
    try:
        done = push(api, None if skip_datasource else body, json_dir)
    except GrafanaClientError as exc:
        raise UserError(f"Grafana at {grafana_url}: {exc.message}") from None
    typer.echo(
        f"datasource {done['datasource']}, folder {done['folder']}, "
        f"{len(done['dashboards'])} dashboards pushed: {', '.join(done['dashboards'])}"
    )
