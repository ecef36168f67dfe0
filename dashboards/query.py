"""The ClickHouse data source's query model, as a grafana-foundation-sdk dataquery variant.

grafana-foundation-sdk ships typed dataquery classes for Grafana's core data sources
only. This module adds one for ``grafana-clickhouse-datasource`` (plugin v4, SQL
editor) so panels carry typed targets, and registers it with the SDK runtime
(``register()``) so ``Dashboard.from_json`` decodes targets of panels whose
datasource type is the ClickHouse plugin into ``ClickHouseQuery`` instead of the
SDK's untyped ``UnknownDataquery`` bag.

Fields, as the plugin reads them (``src/types/sql.ts`` and the backend's
``sqlutil.Query``):

* ``editorType``: ``"sql"`` — raw SQL editor (the other value, ``"builder"``, needs
  ``builderOptions``; we never generate it).
* ``rawSql``: the SQL, with macros (``$__timeFilter(col)`` ...) and template
  variables left for the plugin to expand.
* ``format``: the backend's ``sqlutil.FormatQueryOption``: ``0`` time series,
  ``1`` table, ``2`` logs, ``3`` traces. (Not 0 = table: the Go enum starts with
  ``FormatOptionTimeSeries = iota``, and the plugin's own bundled dashboards use
  ``1`` on table panels.)
* ``queryType``: the frontend's ``QueryType`` enum, ``"table"`` or ``"timeSeries"``
  (camel case in the plugin source); it selects the editor's display mode.
* ``datasource``: ``{"type", "uid"}``, always the provisioned ClickHouse source.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

from dashboards.constants import DATASOURCE_TYPE, DATASOURCE_UID

FORMAT_TIME_SERIES: typing.Final = 0
"""``sqlutil.FormatOptionTimeSeries``: first column is the time, long frames pivoted to wide."""

FORMAT_TABLE: typing.Final = 1
"""``sqlutil.FormatOptionTable``: rows as returned."""

QUERY_TYPE_TABLE: typing.Final = "table"
QUERY_TYPE_TIME_SERIES: typing.Final = "timeSeries"
EDITOR_TYPE_SQL: typing.Final = "sql"


def datasource_ref() -> dashboard.DataSourceRef:
    """A reference to the provisioned ClickHouse data source (fixed uid, plugin type)."""
    return dashboard.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class ClickHouseQuery(cogvariants.Dataquery):
    """One target of a panel: a raw-SQL query for the ClickHouse plugin.

    ``to_json`` and ``from_json`` are exact inverses for every field this class
    knows; keys it does not know are kept in ``extra`` and written back unchanged,
    so a dashboard edited elsewhere survives a round trip.
    """

    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        format_val: int = FORMAT_TABLE,
        query_type: str = QUERY_TYPE_TABLE,
        editor_type: str = EDITOR_TYPE_SQL,
        datasource: dashboard.DataSourceRef | None = None,
        hide: bool | None = None,
        extra: dict[str, typing.Any] | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val
        self.query_type = query_type
        self.editor_type = editor_type
        self.datasource = datasource
        self.hide = hide
        self.extra = dict(extra or {})

    _KNOWN: typing.ClassVar[tuple[str, ...]] = (
        "refId",
        "rawSql",
        "format",
        "queryType",
        "editorType",
        "datasource",
        "hide",
    )

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = dict(self.extra)
        payload["refId"] = self.ref_id
        payload["rawSql"] = self.raw_sql
        payload["format"] = self.format_val
        payload["queryType"] = self.query_type
        payload["editorType"] = self.editor_type
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        ds = data.get("datasource")
        return cls(
            ref_id=data.get("refId", "A"),
            raw_sql=data.get("rawSql", ""),
            format_val=data.get("format", FORMAT_TABLE),
            query_type=data.get("queryType", QUERY_TYPE_TABLE),
            editor_type=data.get("editorType", EDITOR_TYPE_SQL),
            datasource=dashboard.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
            hide=data.get("hide"),
            extra={k: v for k, v in data.items() if k not in cls._KNOWN},
        )


class ClickHouseQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for ``ClickHouseQuery``, in the SDK's fluent style (``.with_target(...)``)."""

    def __init__(self, raw_sql: str, *, ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(
            ref_id=ref_id, raw_sql=raw_sql, datasource=datasource_ref()
        )

    def build(self) -> ClickHouseQuery:
        return self._internal

    def time_series(self) -> typing.Self:
        """Format the result as a time series (first column: time)."""
        self._internal.format_val = FORMAT_TIME_SERIES
        self._internal.query_type = QUERY_TYPE_TIME_SERIES
        return self

    def table(self) -> typing.Self:
        """Format the result as a table (rows as returned)."""
        self._internal.format_val = FORMAT_TABLE
        self._internal.query_type = QUERY_TYPE_TABLE
        return self


def variant_config() -> cogruntime.DataqueryConfig:
    """The SDK runtime entry that decodes ClickHouse targets into ``ClickHouseQuery``."""
    return cogruntime.DataqueryConfig(
        identifier=DATASOURCE_TYPE, from_json_hook=ClickHouseQuery.from_json
    )


def register() -> None:
    """Register the SDK's default plugins and the ClickHouse dataquery variant (idempotent).

    Must run before ``Dashboard.from_json`` so panel options, field config and
    targets decode into typed models.
    """
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    cogruntime.register_dataquery_variant(variant_config())
