"""The event contract: topics, record keys, event types, and the JSON Schemas in `schemas/`.

The schemas are compiled once per process (fastjsonschema generates plain Python code for them),
so validating an event costs a few microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

SOURCE_TOPICS: tuple[str, ...] = ("cart-events", "tickets", "survey-replies")
KEY_FIELD: dict[str, str] = {
    "cart-events": "cart_id",
    "tickets": "ticket_id",
    "survey-replies": "response_id",
}
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def schema_path(topic: str) -> Path:
    return SCHEMA_DIR / f"{topic}.schema.json"


@cache
def load_schema(topic: str) -> dict[str, Any]:
    return json.loads(schema_path(topic).read_text())


TYPES_BY_TOPIC: dict[str, frozenset[str]] = {
    topic: frozenset(load_schema(topic)["properties"]["type"]["enum"]) for topic in SOURCE_TOPICS
}
TOPIC_OF_TYPE: dict[str, str] = {t: topic for topic, types in TYPES_BY_TOPIC.items() for t in types}


@cache
def _validator(topic: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(load_schema(topic))


def schema_error(topic: str, obj: object) -> str | None:
    """None when obj satisfies the topic's schema, else a short reason."""
    try:
        _validator(topic)(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.message
    except (TypeError, ValueError, RecursionError) as exc:  # pathological input
        return f"cannot be validated: {type(exc).__name__}"
    return None


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
