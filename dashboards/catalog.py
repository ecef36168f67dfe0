"""Every generated dashboard, by uid: the one list the generator, tests and bench read.

To add a dashboard: write a module with ``UID`` and
``build() -> Dashboard`` using ``dashboards.panels``, add it to ``MODULES`` and run
``python -m dashboards.generate``. The tests pick it up from here, including
executing every query against demo data — so a dashboard whose tables do not exist
yet needs its migration (and demo rows in ``dashboards.demo_data``) first.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from grafana_foundation_sdk.models import dashboard as models

from dashboards import anomalies, budgets, forecast, optimization, overview, users
from dashboards import models as models_dashboard

MODULES: tuple[ModuleType, ...] = (
    overview,
    models_dashboard,
    users,
    forecast,
    optimization,
    budgets,
    anomalies,
)


def builders() -> dict[str, Callable[[], models.Dashboard]]:
    """uid -> build function, in display order."""
    out: dict[str, Callable[[], models.Dashboard]] = {}
    for module in MODULES:
        uid = module.UID
        if uid in out:
            raise ValueError(f"duplicate dashboard uid {uid!r}")
        out[uid] = module.build
    return out
