"""Names shared by the generated dashboards and the Grafana provisioning in ``deploy/grafana``.

Every panel of every dashboard references the ClickHouse data source by this uid and
type; ``deploy/grafana/provisioning/datasources/clickhouse.yaml`` provisions it under
the same uid (``tests/deploy`` fails when the two drift apart).
"""

from typing import Final

DATASOURCE_UID: Final = "tokenpipe-clickhouse"
"""uid of the provisioned ClickHouse data source (fixed, so dashboards never need a lookup)."""

DATASOURCE_TYPE: Final = "grafana-clickhouse-datasource"
"""Plugin id of Grafana's official ClickHouse data source (plugin v4 settings)."""
