"""The event contract: topics, record keys, event types, and the JSON Schemas in `schemas/`.

The JSON files are the single source of truth for what a valid event is, so the event types are
read from them too. Each schema is compiled once per process (fastjsonschema turns it into plain
Python code), so validating an event costs microseconds on the hot path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

SOURCE_TOPICS: tuple[str, ...] = ("cart-events", "tickets", "survey-replies", "activity")
KEY_FIELD: dict[str, str] = {
    "cart-events": "cart_id",
    "tickets": "ticket_id",
    "survey-replies": "response_id",
    "activity": "user_id",
}
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def schema_path(topic: str) -> Path:
    """The schema file of a source topic; an unknown topic is a programming error."""
    if topic not in KEY_FIELD:
        raise KeyError(f"not a source topic: {topic!r}")
    return SCHEMA_DIR / f"{topic}.schema.json"


@cache
def _schema(topic: str) -> dict[str, Any]:
    return json.loads(schema_path(topic).read_text(encoding="utf-8"))


def load_schema(topic: str) -> dict[str, Any]:
    """The topic's schema as a fresh dict (the file is read once), safe for callers to change."""
    return copy.deepcopy(_schema(topic))


TYPES_BY_TOPIC: dict[str, frozenset[str]] = {
    topic: frozenset(_schema(topic)["properties"]["type"]["enum"]) for topic in SOURCE_TOPICS
}
TOPIC_OF_TYPE: dict[str, str] = {t: topic for topic, types in TYPES_BY_TOPIC.items() for t in types}


def topic_of(event: dict[str, Any]) -> str:
    """The source topic an event belongs on, from its type."""
    return TOPIC_OF_TYPE[event["type"]]


def record_key(event: dict[str, Any]) -> str:
    """The Kafka record key: cart_id, ticket_id, response_id or user_id."""
    return str(event[KEY_FIELD[topic_of(event)]])


def _is_type_test(condition: object) -> str | None:
    """The event type an `if` of the schemas' allOf tests for, or None for any other `if`."""
    if not isinstance(condition, dict) or condition.get("required") != ["type"]:
        return None
    properties = condition.get("properties")
    if set(condition) != {"properties", "required"} or not isinstance(properties, dict):
        return None
    test = properties.get("type")
    if set(properties) != {"type"} or not isinstance(test, dict) or set(test) != {"const"}:
        return None
    return test["const"] if isinstance(test["const"], str) else None


def schema_for_type(topic: str, kind: str) -> dict[str, Any]:
    """The topic's schema as it applies to events whose `type` is `kind`: of the allOf branches
    `if type == X then ...`, only the one for `kind` is kept, unconditionally. Equivalent for
    such events, and much faster: a failing `if` costs fastjsonschema an exception."""
    schema = load_schema(topic)
    branches = []
    for branch in schema.pop("allOf", []):
        tested = _is_type_test(branch.get("if"))
        if tested is None:
            branches.append(branch)
        elif tested == kind and "then" in branch:
            branches.append(branch["then"])
        elif tested != kind and "else" in branch:
            branches.append(branch["else"])
    if branches:
        schema["allOf"] = branches
    return schema


@cache
def _validator(topic: str, kind: str | None) -> Callable[[Any], Any]:
    return fastjsonschema.compile(_schema(topic) if kind is None else schema_for_type(topic, kind))


def schema_error(topic: str, obj: object) -> str | None:
    """None when obj satisfies the topic's schema, else a short reason for the dead-letter
    headers. Never raises for any obj, so one hostile record cannot stop the worker."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    known = isinstance(kind, str) and kind in TYPES_BY_TOPIC[topic]
    validate = _validator(topic, kind if known else None)
    try:
        validate(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.message
    except Exception as exc:  # e.g. a value whose comparison raises: still just invalid
        return f"cannot be validated: {type(exc).__name__}"
    return None


def dead_letter_topic(topic: str) -> str:
    """Where records of `topic` that cannot be applied go, with their original bytes."""
    return f"{topic}.dlq"
