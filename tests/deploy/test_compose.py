"""Structure of the docker-compose stack and its deploy/ configuration.

No Docker daemon is needed: the files are parsed (YAML, XML, the Dockerfile's text) and
checked against each other and against the code they configure — the settings model,
the dashboards' data source uid. ``docker compose config`` runs as an extra check when
the compose plugin is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from dashboards.constants import DATASOURCE_TYPE, DATASOURCE_UID
from pipeline.config import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
DATASOURCE_FILE = PROVISIONING / "datasources" / "clickhouse.yaml"
DASHBOARD_PROVIDER_FILE = PROVISIONING / "dashboards" / "tokenpipe.yaml"

# Services built from this repository (they run the tokenpipe CLI).
TOKENPIPE_SERVICES = ("migrate", "worker")
# The one service allowed to have no healthcheck: it runs once and exits.
ONE_SHOT_SERVICES = ("migrate",)
# Environment variables read by pipeline.config besides TOKENPIPE_<FIELD>.
EXTRA_TOKENPIPE_ENV = {ENV_PREFIX + "CONFIG"}

_VAR = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?](?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``, ``$VAR`` and ``$$`` as docker compose does."""
    env = env or {}

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        if name in env:
            return env[name]
        return m.group("default") or ""

    return _VAR.sub(repl, value)


def _load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict of interpolated strings (list or mapping form)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in raw)
        raw = dict(pairs)
    return {str(k): interpolate(str(v)) for k, v in raw.items()}


def volumes_of(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, is_bind) of every volume entry, short or long syntax."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = interpolate(entry).split(":")
            source, target = parts[0], parts[1]
            is_bind = source.startswith((".", "/", "~"))
        else:
            source, target = str(entry.get("source", "")), str(entry["target"])
            is_bind = entry.get("type") == "bind"
        out.append((source, target, is_bind))
    return out


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host_ip, host_port, container_port) of every published port (short syntax)."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append(
                (
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry["target"]),
                )
            )
            continue
        text = interpolate(str(entry))
        parts = text.rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("", parts[0], parts[1]))
        else:
            out.append(("", "", parts[0]))
    return out


# --------------------------------------------------------------------------- images


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "clickhouse", "grafana", "migrate", "worker"} <= set(services)


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            assert "build" in svc, f"{name}: neither image nor build"
            continue
        image = interpolate(str(image))
        if "@sha256:" in image:
            continue
        repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} uses latest"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} is not a version"
        assert repo


def test_image_families(services: dict[str, dict[str, Any]]) -> None:
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", services["kafka"]["image"])
    assert re.fullmatch(
        r"clickhouse/clickhouse-server:\d+\.\d+(\.\d+)*", services["clickhouse"]["image"]
    )
    assert re.fullmatch(r"grafana/grafana(-oss)?:11\.\d+\.\d+", services["grafana"]["image"])
    for name in TOKENPIPE_SERVICES:
        assert services[name].get("build") in (".", {"context": "."}), name


def test_grafana_clickhouse_plugin_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    plugins = env_of(services["grafana"]).get("GF_INSTALL_PLUGINS", "")
    entries = [p.strip() for p in plugins.split(",") if p.strip()]
    ch = [e for e in entries if e.split()[0].split("@")[0] == DATASOURCE_TYPE]
    assert len(ch) == 1, f"{DATASOURCE_TYPE} not in GF_INSTALL_PLUGINS={plugins!r}"
    # Grafana 11 docs: "<id> <version>"; Grafana's preinstall syntax: "<id>@<version>".
    assert re.fullmatch(rf"{re.escape(DATASOURCE_TYPE)}[ @]4\.\d+\.\d+", ch[0]), ch[0]


# --------------------------------------------------------------------- health/order


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        if name in ONE_SHOT_SERVICES:
            continue
        hc = svc.get("healthcheck")
        assert hc, f"{name}: no healthcheck"
        assert not hc.get("disable"), f"{name}: healthcheck disabled"
        test = hc.get("test")
        assert test and test not in (["NONE"], "NONE"), f"{name}: empty healthcheck"


def test_healthchecks_probe_the_right_thing(services: dict[str, dict[str, Any]]) -> None:
    def text(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else str(test)

    kafka = text("kafka")
    assert (
        "/opt/kafka/bin/kafka-broker-api-versions.sh" in kafka
        or "/opt/kafka/bin/kafka-topics.sh" in kafka
    )
    assert "/ping" in text("clickhouse") or "SELECT 1" in text("clickhouse")
    # 127.0.0.1 would pass while the entrypoint's localhost-only init server runs.
    assert "127.0.0.1:8123" not in text("clickhouse")
    assert "/api/health" in text("grafana")
    assert "/health" in text("worker")


def _depends(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def test_worker_waits_for_its_dependencies(services: dict[str, dict[str, Any]]) -> None:
    deps = _depends(services["worker"])
    assert deps.get("kafka") == "service_healthy"
    assert deps.get("clickhouse") == "service_healthy"
    assert deps.get("migrate") == "service_completed_successfully"


def test_migrate_is_one_shot_after_clickhouse(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert _depends(migrate).get("clickhouse") == "service_healthy"
    assert str(migrate.get("restart")) == "no"
    command = migrate.get("command")
    assert (command if isinstance(command, list) else str(command).split())[0] == "migrate"
    command = services["worker"].get("command")
    assert (command if isinstance(command, list) else str(command).split())[0] == "worker"


def test_every_dependency_is_a_service(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for dep, condition in _depends(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits on {dep}'s health"


# -------------------------------------------------------------------- scaling/ports


def test_worker_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "hostname" not in worker
    for _ip, host_port, _target in published_ports(worker):
        # A fixed single host port would make the second replica fail to start.
        assert host_port == "" or re.fullmatch(r"\d+-\d+", host_port), host_port
        if host_port:
            low, high = (int(p) for p in host_port.split("-"))
            assert high > low


def test_published_ports_bind_localhost(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for ip, host_port, target in published_ports(svc):
            if host_port:
                assert ip == "127.0.0.1", f"{name}: {host_port}:{target} open on all interfaces"


# ----------------------------------------------------------------------- volumes


def test_bind_mounted_host_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    binds = 0
    for name, svc in services.items():
        for source, _target, is_bind in volumes_of(svc):
            if is_bind:
                binds += 1
                assert source.startswith("./"), f"{name}: bind {source} is not repo-relative"
                assert (REPO / source).exists(), f"{name}: {source} missing from the repo"
    assert binds >= 4


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    used = {
        source
        for svc in compose["services"].values()
        for source, _t, is_bind in volumes_of(svc)
        if not is_bind and source
    }
    assert used, "no named volumes: data would be lost on `docker compose down`"
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert {"kafka-data", "clickhouse-data", "grafana-data"} <= used


def test_clickhouse_config_files_are_mounted_as_files(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = {t: s for s, t, b in volumes_of(services["clickhouse"]) if b}
    for kind in ("config.d", "users.d"):
        targets = [t for t in mounts if t.startswith(f"/etc/clickhouse-server/{kind}/")]
        # A file each: a directory mount would hide users.d/default-user.xml, which the
        # image's entrypoint writes to create CLICKHOUSE_USER.
        assert targets, f"nothing mounted into {kind}"
        for target in targets:
            assert target.endswith(".xml")
            source = REPO / mounts[target]
            assert source.is_file()
            assert ET.parse(source).getroot().tag == "clickhouse"


def test_clickhouse_database_and_user(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["clickhouse"])
    assert env["CLICKHOUSE_DB"] == "tokenpipe"
    assert env["CLICKHOUSE_USER"] and env["CLICKHOUSE_PASSWORD"]
    assert env.get("CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT") == "1"
    nofile = services["clickhouse"]["ulimits"]["nofile"]
    assert int(nofile["soft"]) >= 262144 and int(nofile["hard"]) >= 262144


# ------------------------------------------------------------------------- kafka


REQUIRED_KAFKA_ENV = {
    "KAFKA_NODE_ID",
    "KAFKA_PROCESS_ROLES",
    "KAFKA_LISTENERS",
    "KAFKA_ADVERTISED_LISTENERS",
    "KAFKA_CONTROLLER_LISTENER_NAMES",
    "KAFKA_CONTROLLER_QUORUM_VOTERS",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
    "KAFKA_NUM_PARTITIONS",
}


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        name, _, rest = item.strip().partition("://")
        host, _, port = rest.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_kafka_kraft_single_node(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    env = env_of(kafka)
    missing = REQUIRED_KAFKA_ENV - set(env)
    assert not missing, missing
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert int(env["KAFKA_NUM_PARTITIONS"]) >= 2

    protocol_map = dict(
        p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) <= set(protocol_map)
    assert controller in listeners and controller not in advertised
    assert set(advertised) <= set(listeners)

    # The quorum voter is this node on its controller listener.
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"]
    assert int(voter.rpartition(":")[2]) == listeners[controller][1]

    # One advertised listener per audience: containers (the service name) and the host.
    internal = [n for n, (h, _p) in advertised.items() if h == "kafka"]
    external = [n for n, (h, _p) in advertised.items() if h in ("127.0.0.1", "localhost")]
    assert len(internal) == 1 and len(external) == 1
    # The host listener's container port is published on the advertised host port.
    ext_name = external[0]
    published = {(hp, tgt) for _ip, hp, tgt in published_ports(kafka)}
    assert (str(advertised[ext_name][1]), str(listeners[ext_name][1])) in published
    # The controller listener is never published.
    assert all(tgt != str(listeners[controller][1]) for _ip, _hp, tgt in published_ports(kafka))


def test_workers_use_the_internal_kafka_listener(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = env_of(services["kafka"])
    internal = {
        f"{h}:{p}"
        for h, p in _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).values()
        if h == "kafka"
    }
    for name in TOKENPIPE_SERVICES:
        bootstrap = env_of(services[name]).get(ENV_PREFIX + "KAFKA_BOOTSTRAP")
        if bootstrap is not None:
            assert set(bootstrap.split(",")) <= internal, f"{name}: {bootstrap}"
    assert env_of(services["worker"]).get(ENV_PREFIX + "KAFKA_BOOTSTRAP")


# ------------------------------------------------------------- tokenpipe settings


def test_tokenpipe_env_vars_are_settings(services: dict[str, dict[str, Any]]) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | EXTRA_TOKENPIPE_ENV
    for name in TOKENPIPE_SERVICES:
        env = env_of(services[name])
        ours = {k for k in env if k.startswith(ENV_PREFIX)}
        assert ours, f"{name}: no TOKENPIPE_* settings"
        assert ours <= known, f"{name}: unknown settings {ours - known}"
        # The values must pass the settings' own validation (DSN scheme, host:port, ...).
        values = {
            k[len(ENV_PREFIX) :].lower(): v
            for k, v in env.items()
            if k in known and k not in EXTRA_TOKENPIPE_ENV
        }
        settings = Settings.model_validate(values)
        assert settings.clickhouse_dsn.startswith("http://"), name


def test_tokenpipe_dsn_points_at_the_clickhouse_service(
    services: dict[str, dict[str, Any]],
) -> None:
    from urllib.parse import urlsplit

    ch_env = env_of(services["clickhouse"])
    for name in TOKENPIPE_SERVICES:
        dsn = urlsplit(env_of(services[name])[ENV_PREFIX + "CLICKHOUSE_DSN"])
        assert dsn.hostname == "clickhouse" and dsn.port == 8123
        assert dsn.username == ch_env["CLICKHOUSE_USER"]
        assert dsn.password == ch_env["CLICKHOUSE_PASSWORD"]
        assert dsn.path.strip("/") == ch_env["CLICKHOUSE_DB"]


def test_dockerfile_env_vars_are_settings() -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | EXTRA_TOKENPIPE_ENV
    names = set(re.findall(r"\b(TOKENPIPE_[A-Z_]+)=", DOCKERFILE.read_text()))
    assert names, "Dockerfile sets no TOKENPIPE_* defaults"
    assert names <= known, names - known


def test_worker_listens_on_all_interfaces(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["worker"])
    assert env.get(ENV_PREFIX + "WEB_HOST") == "0.0.0.0"
    port = env.get(ENV_PREFIX + "WEB_PORT", "6066")
    targets = {tgt for _ip, _hp, tgt in published_ports(services["worker"])}
    exposed = {str(p) for p in services["worker"].get("expose") or []}
    assert port in targets | exposed


# ------------------------------------------------------------------------ grafana


def test_datasource_uid_is_the_dashboards_constant() -> None:
    data = _load_yaml(DATASOURCE_FILE)
    assert data["apiVersion"] == 1
    sources = [d for d in data["datasources"] if d["type"] == DATASOURCE_TYPE]
    assert len(sources) == 1
    assert sources[0]["uid"] == DATASOURCE_UID


def test_datasource_points_at_the_clickhouse_service(
    services: dict[str, dict[str, Any]],
) -> None:
    (ds,) = [d for d in _load_yaml(DATASOURCE_FILE)["datasources"] if d["uid"] == DATASOURCE_UID]
    json_data, secure = ds["jsonData"], ds["secureJsonData"]
    ch_env = env_of(services["clickhouse"])
    assert json_data["host"] in services
    assert (json_data["protocol"], int(json_data["port"])) in {("http", 8123), ("native", 9000)}
    assert json_data["username"] == ch_env["CLICKHOUSE_USER"]
    assert json_data["defaultDatabase"] == ch_env["CLICKHOUSE_DB"]
    # The password comes from Grafana's environment, which compose must provide.
    ref = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", str(secure["password"]))
    assert ref, "password should be an environment reference, not a literal"
    grafana_env = env_of(services["grafana"])
    assert grafana_env.get(ref.group(1)) == ch_env["CLICKHOUSE_PASSWORD"]


def test_grafana_provisioning_is_mounted(services: dict[str, dict[str, Any]]) -> None:
    mounts = {t: s for s, t, b in volumes_of(services["grafana"]) if b}
    assert Path(REPO / mounts["/etc/grafana/provisioning"]).resolve() == PROVISIONING.resolve()


def test_dashboard_provider_reads_the_mounted_json(services: dict[str, dict[str, Any]]) -> None:
    data = _load_yaml(DASHBOARD_PROVIDER_FILE)
    assert data["apiVersion"] == 1
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "tokenpipe"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["foldersFromFilesStructure"] is False
    path = PurePosixPath(provider["options"]["path"])
    mounts = {PurePosixPath(t): s for s, t, b in volumes_of(services["grafana"]) if b}
    assert path in mounts, f"{path} is not a bind mount of the grafana service"
    assert (REPO / mounts[path]).resolve() == (REPO / "dashboards" / "json").resolve()
    assert (REPO / "dashboards" / "json").is_dir()


def test_grafana_anonymous_access_is_read_only(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["grafana"])
    if env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"


# --------------------------------------------------------------------- Dockerfile


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    instructions = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in instructions if ln.upper().startswith("FROM ")]
    assert froms and "python:3.11-slim" in text
    assert any(re.match(r"HEALTHCHECK\s", ln) for ln in instructions)
    assert re.search(r"HEALTHCHECK[^\n]*(\\\n[^\n]*)*/health", text)
    users = [ln.split()[1] for ln in instructions if ln.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert 'ENTRYPOINT ["tokenpipe"]' in instructions
    assert 'CMD ["worker"]' in instructions
    assert re.search(r"pip install[^\n]*\s\.(\s|$)", text)
    assert "EXPOSE 6066" in instructions


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".git", ".venv", "var"} <= entries
    # The build needs these; ignoring them would break `pip install .`.
    for needed in ("pyproject.toml", "pipeline", "schemas", "dashboards"):
        assert needed not in entries


# ---------------------------------------------------------------- docker compose


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    # Not the legacy python docker-compose 1.x: it predates the Compose spec (`name:`).
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("docker compose plugin not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
