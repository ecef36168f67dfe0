"""Generate the checked-in JSON Schema files from the pydantic models.

Run ``python -m schemas.generate`` after changing a model; ``tests/schemas``
fails while the files are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.alerts import AlertEvent, Anomaly, WebhookDelivery
from schemas.budgets import BudgetDefinition, ReserveDecision, ReserveRequest
from schemas.dlq import DeadLetter
from schemas.usage import CostedUsage, UsageEvent

SCHEMA_DIR = Path(__file__).parent / "jsonschema"

MODELS: dict[str, type[BaseModel]] = {
    "usage_event.v1.json": UsageEvent,
    "costed_usage.v1.json": CostedUsage,
    "dead_letter.v1.json": DeadLetter,
    "budget_definition.v1.json": BudgetDefinition,
    "reserve_request.v1.json": ReserveRequest,
    "reserve_decision.v1.json": ReserveDecision,
    "alert_event.v1.json": AlertEvent,
    "anomaly.v1.json": Anomaly,
    "webhook_delivery.v1.json": WebhookDelivery,
}


def render(model: type[BaseModel]) -> str:
    """The JSON Schema of ``model`` as stable, pretty JSON text."""
    schema: dict[str, Any] = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, model in MODELS.items():
        (SCHEMA_DIR / name).write_text(render(model))
        print(f"wrote {SCHEMA_DIR / name}")


if __name__ == "__main__":
    main()
