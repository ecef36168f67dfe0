"""The budget control plane: definitions, the ledger, pre-flight reservations, alerts.

``register_control(app, rt, topics)`` adds to the worker app built by
``pipeline.app.create_app``:

* **definitions** — the compacted ``budgets`` topic (key = budget id), read by every
  worker into a :class:`~pipeline.control.registry.BudgetRegistry`; each version is
  also inserted into ClickHouse ``budgets`` (history, dashboards).
* **mapper** agent ``budget-mapper``: ``usage.costed`` → ``budget.updates``. For
  every batch it matches each record to the budgets in scope and sends ONE message
  per budget with the records and their source ``(partition, seq)`` (see
  :mod:`.wire`). It acks the costed messages only after the broker confirmed those
  sends. With no budgets defined it acks without parsing (the zero-overhead path).
* **ledger** agent ``budget-ledger`` over ``budget.updates`` and the faust table
  ``budget-ledger`` (key = budget id, value = :func:`.wire.encode_value`). It applies
  costed records (``ledger.apply_costed``: watermarks skip replayed messages, the
  recent-id list skips records the costing agent re-produced after a crash) and
  reserve commands (``ledger.reserve`` for every matching budget, combined, released
  on denial). Threshold alerts are produced to ``alerts`` and confirmed by the
  broker BEFORE the new state is written, so a crash can re-emit an alert (same
  deterministic id, deduplicated downstream) but never lose one.
* **alerts** agent: ``alerts`` → ClickHouse ``alerts`` (ReplacingMergeTree by id) and
  webhook/Slack delivery by the rules file (setting ``alert_rules``, env
  ``TOKENPIPE_ALERT_RULES``); every attempt goes to ``webhook_deliveries``; an alert
  already delivered (ok/dead row) is not sent again after a restart.
* HTTP: ``PUT/GET/DELETE /v1/budgets[/{id}]``, ``POST /v1/budgets/reserve``,
  ``GET /v1/budgets/{id}/status``, ``GET /v1/alerts``.

Ownership (v1 choice): ``budget.updates`` and the ledger table have ONE partition.
All ledgers live in one task of one worker, so a reserve that spans several budgets
is checked and reserved in all of them in one step — atomic without locks and
without a release protocol. Reserve and status requests reaching another worker
are forwarded over HTTP to the owner of partition 0 (``app.router.key_store``).
The limit: reservation and ledger throughput is that of one faust task (a few
thousand commands/s); sharding later means partitions > 1 keyed by budget id and a
two-phase reserve for multi-budget requests (``combine_decisions`` + ``release``
already support it).

Reserve path: the HTTP handler produces a reserve command, the ledger agent applies
it (check-and-reserve, table write) and resolves the handler's future. A command
older than its deadline (a replay after a restart; the caller has given up) is
skipped. Reservation durability is that of the table changelog (at-least-once): a
kill -9 between the answer and the changelog write can lose a reservation, which
then no longer holds its estimate; the costed event still charges the actual cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import httpx
from faust.web import Request, Response, View
from pydantic import ValidationError

from pipeline.alerts.delivery import AlertDeliverer
from pipeline.alerts.rules import RuleSet, load_rules, match
from pipeline.api import keyring_for
from pipeline.apikeys import AuthError, authorize_request
from pipeline.budgets.ledger import combine_decisions, release, reserve, status
from pipeline.budgets.matching import event_dimensions
from pipeline.budgets.suggest import ModelFallback
from pipeline.control import wire
from pipeline.control.registry import BudgetRegistry
from schemas.alerts import AlertEvent, DeliveryStatus, WebhookDelivery
from schemas.budgets import BudgetDefinition, ReserveDecision, ReserveRequest
from schemas.topics import USAGE_COSTED, TopicSpec
from schemas.topics import topics as declared_topics

log = logging.getLogger(__name__)

BUDGETS = "budgets"
BUDGET_UPDATES = "budget.updates"
ALERTS = "alerts"

LEDGER_TABLE = "budget-ledger"
MAPPER_TAKE = 256
MAPPER_TAKE_SECONDS = 0.05
RESERVE_TIMEOUT_S = 10.0
PERSIST_EVERY_S = 0.2
"""Reservations reach the ledger table's changelog at most this long after they are made."""
ALERTS_TAKE = 100


def _spec(name: str) -> TopicSpec:
    return declared_topics()[name]


def _now() -> datetime:
    return datetime.now(UTC)


class ClickHouseDelivered:
    """``DeliveredStore`` over ``webhook_deliveries`` (final rows) plus this process's marks."""

    def __init__(self, store: Any, executor: ThreadPoolExecutor) -> None:
        self._store = store
        self._executor = executor
        self._marked: dict[tuple[str, str], DeliveryStatus] = {}

    async def has(self, alert_id: str, channel: str) -> bool:
        if (alert_id, channel) in self._marked:
            return True
        loop = asyncio.get_running_loop()
        n = await loop.run_in_executor(
            self._executor,
            lambda: self._store.command(
                "SELECT count() FROM webhook_deliveries WHERE alert_id = {a:String}"
                " AND channel = {c:String} AND status IN ('ok', 'dead')",
                {"a": alert_id, "c": channel},
            ),
        )
        return int(n) > 0

    async def mark(self, alert_id: str, channel: str, status: DeliveryStatus) -> None:
        self._marked[(alert_id, channel)] = status


class ControlPlane:
    """What ``register_control`` built (tests and the lead may inspect it)."""

    def __init__(self, app: faust.App, rt: Any, rules: RuleSet | None) -> None:
        self.app = app
        self.rt = rt
        self.registry = BudgetRegistry()
        self.rules = rules
        self.suggest = ModelFallback(rt.costing.catalog)
        self.deliverer: AlertDeliverer | None = None
        self.updates_topic_name = ""

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.rt.executor, fn, *args)

    async def query(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.rt.query_executor, fn, *args)


def _rules(settings: Any) -> RuleSet | None:
    path = settings.alert_rules
    return load_rules(Path(path)) if path else None


def register_control(app: faust.App, rt: Any, topics: Mapping[str, faust.TopicT]) -> ControlPlane:
    """Add the budget control plane to ``app``; ``topics`` holds at least ``usage.costed``."""
    from pipeline.app import _topic  # the same topic construction as the rest of the app

    settings = rt.settings
    cp = ControlPlane(app, rt, _rules(settings))
    costed_topic = topics[USAGE_COSTED]
    budgets_topic = _topic(app, settings, _spec(BUDGETS))
    updates_topic = _topic(app, settings, _spec(BUDGET_UPDATES))
    alerts_topic = _topic(app, settings, _spec(ALERTS))
    ledger = app.Table(LEDGER_TABLE, default=None, partitions=1)
    cp.updates_topic_name = updates_topic.get_topic_name()
    app.tokenpipe_control = cp  # type: ignore[attr-defined]

    @app.task
    async def follow_budgets() -> None:
        await budgets_topic.maybe_declare()
        await cp.registry.follow(settings.kafka_bootstrap, budgets_topic.get_topic_name())

    # ------------------------------------------------------------------ mapper
    @app.agent(costed_topic, name="budget-mapper")
    async def mapper(stream: Any) -> None:
        await cp.registry.loaded.wait()
        async for batch in stream.noack_take(MAPPER_TAKE, MAPPER_TAKE_SECONDS):
            if len(cp.registry):
                index = cp.registry.index
                per_budget: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
                for ev in batch:
                    msg = ev.message
                    try:
                        records = json.loads(msg.value or b"[]")
                    except ValueError:
                        continue  # the sink dead-letters nothing here; not ours to judge
                    if isinstance(records, dict):
                        records = [records]
                    for i, rec in enumerate(records):
                        for defn in index.match(event_dimensions(_Dims(rec))):
                            per_budget.setdefault(defn.id, []).append(
                                (msg.partition, wire.seq(msg.offset, i), wire.compact_record(rec))
                            )
                futures = [
                    await updates_topic.send(
                        key=bid.encode(), value=wire.costed_message(bid, items), force=True
                    )
                    for bid, items in per_budget.items()
                ]
                await asyncio.gather(*futures)
            for ev in batch:
                await stream.ack(ev)

    # ------------------------------------------------------------------ ledger
    # The owner of the ledger partition keeps the authoritative ledger states in
    # memory (``live``), loaded from the faust table on first use. Costed records
    # (ledger agent) and reservations (HTTP handler, in process) both change ``live``
    # synchronously — no await between check and reserve, so it is atomic on the
    # event loop without locks. The table (changelog) is written only inside the
    # ledger agent's iteration, as faust requires: after each costed message, and
    # for reservations through a coalesced "persist" command (every
    # PERSIST_EVERY_S). A reservation made less than that before a kill -9 is lost
    # (it stops holding its estimate; the costed event still charges the actual).
    live: dict[str, tuple[Any, wire.RecentIds]] = {}
    dirty: set[str] = set()
    persist_pending: list[bool] = [False]

    def load(defn: BudgetDefinition) -> tuple[Any, wire.RecentIds]:
        got = live.get(defn.id)
        if got is None:
            got = wire.decode_value(ledger.get(defn.id), defn)
            live[defn.id] = got
        return got

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _forget_live(app: faust.App, revoked: Any, **_: Any) -> None:
        if any(tp.topic == cp.updates_topic_name for tp in revoked):
            live.clear()  # another worker may own the ledgers now: reload from the table

    async def apply_costed_msg(body: dict[str, Any]) -> None:
        from pipeline.budgets.ledger import apply_costed

        budget_id = body["b"]
        defn = cp.registry.get(budget_id)
        if defn is None:
            return  # deleted budget: its records are not counted
        state, recent = load(defn)
        items = [(int(p), int(s), wire.record_from_compact(r)) for p, s, r in body["r"]]
        fresh = wire.dedup_records(items, recent)
        new, alerts = apply_costed(state, defn, fresh, _now())
        live[budget_id] = (new, recent)
        if alerts:
            futures = []
            for a in alerts:
                event = wire.alert_event(a, defn)
                futures.append(
                    await alerts_topic.send(
                        key=event.alert_id.encode(),
                        value=event.model_dump_json().encode(),
                        force=True,
                    )
                )
            await asyncio.gather(*futures)  # alerts durable before the state that fired them
        await write_table(budget_id)

    async def write_table(budget_id: str) -> None:
        """Write the live state of ``budget_id`` to the table (changelog); in-agent only.

        Encoding thousands of open reservations took ~35 ms; it runs off the event
        loop so reserves keep answering. The state is immutable; the mutable id list
        is copied first.
        """
        state, recent = live[budget_id]
        snapshot = wire.RecentIds(recent.to_list())
        loop = asyncio.get_running_loop()
        ledger[budget_id] = await loop.run_in_executor(None, wire.encode_value, state, snapshot)
        if live.get(budget_id, (None,))[0] is state:
            dirty.discard(budget_id)  # nothing changed while encoding

    def reserve_now(req: ReserveRequest, defns: list[BudgetDefinition]) -> ReserveDecision:
        """Check-and-reserve in every matching budget at once (synchronous: atomic)."""
        now = _now()
        states = {}
        decisions = []
        for d in defns:
            state, recent = load(d)
            state, decision = reserve(state, d, req, now, suggest=cp.suggest)
            states[d.id] = (state, recent)
            decisions.append(decision)
        combined = combine_decisions(decisions, request=req, suggest=cp.suggest)
        if not combined.allowed:
            for d, dec in zip(defns, decisions, strict=True):
                if dec.allowed and dec.reason == "ok":
                    st, recent = states[d.id]
                    states[d.id] = (release(st, req.request_id), recent)
        live.update(states)
        dirty.update(states)
        schedule_persist()
        return combined

    def schedule_persist() -> None:
        if not persist_pending[0]:
            persist_pending[0] = True
            asyncio.get_running_loop().call_later(
                PERSIST_EVERY_S, lambda: asyncio.ensure_future(send_persist())
            )

    async def send_persist() -> None:
        persist_pending[0] = False
        ids = sorted(dirty)
        if ids:
            body = json.dumps({"t": "persist", "b": ids}).encode()
            await updates_topic.send(key=ids[0].encode(), value=body, force=True)

    @app.agent(updates_topic, name="budget-ledger-agent")
    async def ledger_agent(stream: Any) -> None:
        async for ev in stream.events():
            try:
                body = json.loads(ev.value)
            except ValueError:
                log.warning("budget.updates: skipping a message that is not JSON")
                continue
            kind = body.get("t")
            if kind == "costed":
                await apply_costed_msg(body)
            elif kind == "persist":
                for bid in body["b"]:
                    if bid in live:
                        await write_table(bid)

    async def submit_reserve(req: ReserveRequest) -> ReserveDecision:
        defns = cp.registry.index.match(req.scope_dimensions())
        if not defns:
            return combine_decisions([])
        if app.rebalancing:
            raise TimeoutError("ledger partition is being reassigned")
        return reserve_now(req, list(defns))

    # ------------------------------------------------------------------ alerts
    async def record_delivery(d: WebhookDelivery) -> None:
        row = (
            d.delivery_id,
            d.alert_id,
            d.channel,
            d.attempt,
            d.status,
            d.http_status,
            d.error,
            d.latency_ms,
            d.ts,
        )
        await cp.run_blocking(
            rt.store.insert_rows, "webhook_deliveries", [row], wire.DELIVERY_COLUMNS
        )

    @app.agent(alerts_topic, name="alerts")
    async def alerts_agent(stream: Any) -> None:
        if cp.rules is not None and cp.deliverer is None:
            cp.deliverer = AlertDeliverer(
                ClickHouseDelivered(rt.store, rt.query_executor), record_delivery
            )
        async for batch in stream.noack_take(ALERTS_TAKE, 0.2):
            events: list[AlertEvent] = []
            for ev in batch:
                try:
                    events.append(AlertEvent.model_validate_json(ev.message.value or b""))
                except ValidationError as exc:
                    log.warning("alerts topic: skipping an invalid alert: %s", exc)
            rows = [wire.alert_row(e) for e in events]
            if rows:
                await cp.run_blocking(rt.store.insert_rows, "alerts", rows, wire.ALERT_COLUMNS)
            if cp.deliverer is not None and cp.rules is not None:
                rules, deliverer = cp.rules, cp.deliverer
                await asyncio.gather(*(deliverer.dispatch(e, match(rules, e)) for e in events))
            for ev in batch:
                await stream.ack(ev)

    _register_views(cp, load, budgets_topic, submit_reserve)
    return cp


class _Dims:
    """Attribute view of a costed dict for ``event_dimensions``."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        self._d = d

    def __getattr__(self, name: str) -> Any:
        return self._d.get(name)


def _register_views(
    cp: ControlPlane, load: Any, budgets_topic: faust.TopicT, submit_reserve: Any
) -> None:
    app = cp.app
    rt = cp.rt

    async def owner_url() -> str | None:
        """Base URL of the worker owning the ledger partition, None when it is us."""
        updates = cp.updates_topic_name
        if any(tp.topic == updates for tp in app.consumer.assignment()):
            return None
        try:
            dest = app.router.key_store(LEDGER_TABLE, "x")
        except Exception:  # no assignment metadata yet (rebalancing): answer here
            return None
        here = app.conf.canonical_url
        if (dest.host, dest.port) == (here.host, here.port):
            return None
        return str(dest).rstrip("/")

    async def loaded() -> None:
        """Definitions are read from the budgets topic at start: wait for that (bounded)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(cp.registry.loaded.wait(), RESERVE_TIMEOUT_S)

    async def forward(view: View, request: Request, body: bytes | None = None) -> Response | None:
        await loaded()
        url = await owner_url()
        if url is None or request.headers.get("X-Tokenpipe-Forwarded"):
            return None
        async with httpx.AsyncClient(timeout=RESERVE_TIMEOUT_S + 5) as client:
            r = await client.request(
                request.method,
                url + request.url.path,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Tokenpipe-Forwarded": "1",
                    **(
                        {"Authorization": request.headers["Authorization"]}
                        if "Authorization" in request.headers
                        else {}
                    ),
                },
            )
        return view.bytes(r.content, status=r.status_code, content_type="application/json")

    async def put_definition(defn: BudgetDefinition) -> None:
        fut = await budgets_topic.send(
            key=defn.id.encode(), value=defn.model_dump_json().encode(), force=True
        )
        await fut
        cp.registry.apply(defn.id, defn.model_dump_json().encode())
        await cp.run_blocking(
            rt.store.insert_rows,
            "budgets",
            [wire.budget_row(defn.id, defn, time.time_ns(), _now())],
            wire.BUDGET_COLUMNS,
        )

    keys = keyring_for(rt.settings)

    def principal(request: Request, tenant: str | None = None) -> str | None:
        """The tenant a caller is confined to (None: all), or raise ``AuthError``."""
        return authorize_request(keys, request, tenant)

    def require_admin(request: Request) -> None:
        if principal(request) is not None:
            raise AuthError(403, "managing budgets needs an admin key ('*' in api_keys_file)")

    def visible(defn: BudgetDefinition, tenant: str | None) -> bool:
        return tenant is None or defn.scope.get("tenant") == tenant

    @app.page("/v1/budgets/reserve")
    class Reserve(View):
        async def post(self, request: Request) -> Response:
            raw = await request.read()
            try:
                req = ReserveRequest.model_validate_json(raw)
            except ValidationError as exc:
                return self.error(400, _problems(exc))
            try:
                # a tenant-scoped key reserves for its own tenant only
                tenant = principal(request, req.dimensions.get("tenant"))
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            if tenant is not None and req.dimensions.get("tenant") != tenant:
                req = req.model_copy(update={"dimensions": {**req.dimensions, "tenant": tenant}})
            routed = await forward(self, request, raw)
            if routed is not None:
                return routed
            try:
                decision = await submit_reserve(req)
            except TimeoutError:
                return self.error(503, "the budget ledger did not answer in time; retry")
            return self.json(json.loads(decision.model_dump_json()))

    @app.page("/v1/budgets")
    class Budgets(View):
        async def get(self, request: Request) -> Response:
            try:
                tenant = principal(request)
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            await loaded()
            return self.json(
                {
                    "budgets": [
                        json.loads(d.model_dump_json())
                        for d in cp.registry.all()
                        if visible(d, tenant)
                    ]
                }
            )

    @app.page("/v1/budgets/{budget_id}")
    class BudgetView(View):
        async def get(self, request: Request, budget_id: str) -> Response:
            try:
                tenant = principal(request)
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            await loaded()
            defn = cp.registry.get(budget_id)
            if defn is None or not visible(defn, tenant):
                return self.error(404, f"no budget {budget_id!r}")
            return self.json(json.loads(defn.model_dump_json()))

        async def put(self, request: Request, budget_id: str) -> Response:
            try:
                require_admin(request)
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            raw = await request.read()
            try:
                data = json.loads(raw)
            except ValueError as exc:
                return self.error(400, f"body is not JSON: {exc}")
            if not isinstance(data, dict):
                return self.error(400, "body must be a JSON object (a BudgetDefinition)")
            if data.setdefault("id", budget_id) != budget_id:
                return self.error(400, f"id {data['id']!r} differs from the path {budget_id!r}")
            try:
                defn = BudgetDefinition.model_validate(data)
            except ValidationError as exc:
                return self.error(400, _problems(exc))
            await put_definition(defn)
            return self.json(json.loads(defn.model_dump_json()))

        async def delete(self, request: Request, budget_id: str) -> Response:
            try:
                require_admin(request)
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            if cp.registry.get(budget_id) is None:
                return self.error(404, f"no budget {budget_id!r}")
            fut = await budgets_topic.send(key=budget_id.encode(), value=None, force=True)
            await fut
            cp.registry.apply(budget_id, None)
            await cp.run_blocking(
                rt.store.insert_rows,
                "budgets",
                [wire.budget_row(budget_id, None, time.time_ns(), _now())],
                wire.BUDGET_COLUMNS,
            )
            return self.json({"deleted": budget_id})

    @app.page("/v1/budgets/{budget_id}/status")
    class Status(View):
        async def get(self, request: Request, budget_id: str) -> Response:
            try:
                tenant = principal(request)
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            routed = await forward(self, request)
            if routed is not None:
                return routed
            defn = cp.registry.get(budget_id)
            if defn is None or not visible(defn, tenant):
                return self.error(404, f"no budget {budget_id!r}")
            state, _ = load(defn)  # the owner's live state, reservations included
            return self.json(json.loads(status(state, defn, _now()).model_dump_json()))

    @app.page("/v1/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            try:
                tenant = principal(request, request.query.get("tenant"))
            except AuthError as exc:
                return self.error(exc.status, exc.reason)
            budget_id = request.query.get("budget_id")
            where = ["1"]
            if budget_id:
                where.append("budget_id = {b:String}")
            if tenant is not None:
                where.append("tenant = {t:String}")
            sql = (
                "SELECT alert_id, kind, tenant, severity, title, budget_id, data, ts"
                " FROM alerts FINAL WHERE " + " AND ".join(where) + " ORDER BY ts, alert_id"
            )
            rows = await cp.query(
                rt.store.query_dicts, sql, {"b": budget_id or "", "t": tenant or ""}
            )
            deliveries = await cp.query(
                rt.query_store.query_dicts,
                "SELECT alert_id, channel, attempt, status, http_status FROM webhook_deliveries"
                " ORDER BY ts, attempt",
            )
            for r in rows:
                r["ts"] = r["ts"].isoformat()
                r["data"] = json.loads(r["data"])
            shown = {r["alert_id"] for r in rows}
            deliveries = [d for d in deliveries if d["alert_id"] in shown]
            return self.json({"alerts": rows, "deliveries": deliveries})


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )
