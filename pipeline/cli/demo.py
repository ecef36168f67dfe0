"""`tokenpipe demo`: the whole pipeline on this machine, end to end, in one command.

1. Uses the configured broker, or starts the local one (``deploy/kafka/kafka.sh``)
   when none answers at the default address (and stops it again at the end).
2. Starts a worker (it migrates the embedded ClickHouse store on start).
3. Sends demo traffic (with a few duplicates and malformed events).
4. Waits until every valid event is in ClickHouse, prints the reports.
5. Stops the worker; the data stays in ``<data_dir>/clickhouse``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import typer
from rich.console import Console

from pipeline import report
from pipeline.config import Settings, load_settings
from pipeline.demo import DemoConfig
from pipeline.errors import ConfigError, UserError

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"


def _broker_answers(settings: Settings) -> bool:
    """True when the broker answers; it then has the demo's topics (created if missing)."""
    from pipeline.kafka_admin import ensure_topics

    try:
        asyncio.run(ensure_topics(settings, timeout_s=5))
    except ConfigError:
        return False
    return True


def _start_local_broker(console: Console, port: str) -> None:
    if not KAFKA_SCRIPT.exists():
        raise ConfigError(
            "TOKENPIPE_KAFKA_BOOTSTRAP: no broker answers and the local broker script "
            f"{KAFKA_SCRIPT} is not here (installed package?): start Kafka and set the setting"
        )
    console.print(f"starting the local Kafka broker on 127.0.0.1:{port} …")
    env = dict(os.environ, KAFKA_PORT=port)
    done = subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], env=env, check=False)
    if done.returncode != 0:
        raise ConfigError(f"local Kafka broker did not start (see {KAFKA_SCRIPT} logs)")


def _start_worker(settings: Settings, console: Console) -> subprocess.Popen[bytes]:
    log_path = settings.data_dir / "worker.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"starting a worker (log: {log_path}) …")
    env = dict(os.environ)
    env.update(
        {
            "TOKENPIPE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "TOKENPIPE_DATA_DIR": str(settings.data_dir),
            "TOKENPIPE_WEB_PORT": str(settings.web_port),
            "TOKENPIPE_TOPIC_PREFIX": settings.topic_prefix,
            "TOKENPIPE_CLICKHOUSE_DSN": settings.clickhouse_dsn,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", "worker"],
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            raise ConfigError("worker exited at start:\n" + "\n".join(tail))
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise ConfigError(f"worker did not answer on {url} within 120 s (see {log_path})")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def demo_command(
    events: int = typer.Option(20_000, "--events", help="Demo events to send."),
    rate: float | None = typer.Option(None, "--rate", help="Events per second (default: max)."),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file."),
    keep_broker: bool = typer.Option(False, help="Leave a broker the demo started running."),
) -> None:
    """Run the pipeline end to end on this machine and print the report."""
    from pipeline.cli.report import render
    from pipeline.emitter_demo import emit_demo

    if events < 1:
        raise UserError("--events: must be at least 1")
    settings = load_settings(config)
    console = Console()
    started_broker = False
    if not _broker_answers(settings):
        host, _, port = settings.kafka_bootstrap.partition(",")[0].rpartition(":")
        if host not in {"127.0.0.1", "localhost"}:
            raise ConfigError(
                f"TOKENPIPE_KAFKA_BOOTSTRAP ({settings.kafka_bootstrap}): no broker answers"
            )
        _start_local_broker(console, port)
        started_broker = True
    worker = _start_worker(settings, console)
    try:
        base = _calls(settings)
        cfg = DemoConfig(
            seed=int(time.time()),
            span=timedelta(hours=24),
            duplicate_share=0.01,
            malformed_share=0.005,
        )
        stats = asyncio.run(emit_demo(settings, events, cfg, rate=rate))
        console.print(
            f"sent {stats.events} events (+{stats.duplicates} duplicates, "
            f"{stats.malformed} malformed) in {stats.seconds:.1f}s; waiting for ClickHouse …"
        )
        want = base + stats.events
        deadline = time.monotonic() + max(120, events / 500)
        with console.status("") as status:
            while (got := _calls(settings)) < want:
                status.update(f"{got - base:,} / {stats.events:,} events in ClickHouse")
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise ConfigError(
                        f"only {got - base} of {stats.events} events arrived; see "
                        f"{settings.data_dir / 'worker.log'}"
                    )
                time.sleep(0.5)
        for by in ("model", "feature", "tenant"):
            render(_summary(settings, by), console)
        console.print(
            f"[green]all {stats.events} events are in ClickHouse[/green]; duplicates were "
            f"counted once and {stats.malformed} malformed events went to "
            f"{settings.topic('usage.dlq')}. Data: {settings.dsn}"
        )
    finally:
        _stop(worker)
        if started_broker and not keep_broker:
            subprocess.run(
                ["bash", str(KAFKA_SCRIPT), "stop"],
                check=False,
                env=dict(os.environ, KAFKA_PORT=settings.kafka_bootstrap.rpartition(":")[2]),
            )


def _summary(settings: Settings, by: str) -> report.Summary:
    url = f"http://{settings.web_host}:{settings.web_port}/v1/usage/summary"
    r = httpx.get(url, params={"by": by}, timeout=60)
    r.raise_for_status()
    return report.Summary.from_json(r.json())


def _calls(settings: Settings) -> int:
    return int(_summary(settings, "tenant").total["calls"])
