"""The JSON Schemas say exactly what events.md says, and the fast validator the worker uses
(fastjsonschema, via `schema_error`) agrees with the reference one (jsonschema) on every case.

This jsonschema install has no date-time format checker (it needs rfc3339-validator), so the
timestamp rules are carried by the schema's `pattern`, which both validators apply.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.contract.schemas import (
    KEY_FIELD,
    SOURCE_TOPICS,
    SUPPORTED_SCHEMA_VERSIONS,
    TOPIC_OF_TYPE,
    TYPES_BY_TOPIC,
    dead_letter_topic,
    load_schema,
    schema_error,
    schema_path,
)
from tests.reference import TYPES

# events.md, the tables' `type` columns, as the offline reference writes them out
CONTRACT_TYPES = TYPES
ENVELOPE = {"event_id": "e-1", "occurred_at": "2026-11-23T10:15:00.123Z"}

# events.md, "Example", verbatim
CONTRACT_EXAMPLE = {
    "event_id": "7f1c…",
    "type": "nps",
    "occurred_at": "2026-11-23T10:15:00Z",
    "response_id": "r-881",
    "score": 9,
    "channel": "email",
    "region": "eu",
    "team": "billing",
}

# One event per type of the contract tables, with every field the table lists.
FULL: dict[str, dict[str, Any]] = {
    "cart_created": {"cart_id": "c1", "customer_id": "u1"},
    "item_added": {"cart_id": "c1", "sku": "s1", "quantity": 2, "unit_price": 9.99, "upsell": True},
    "item_removed": {"cart_id": "c1", "sku": "s1", "quantity": 1},
    "checkout_started": {"cart_id": "c1"},
    "order_placed": {
        "cart_id": "c1",
        "order_id": "o1",
        "amount": 19.98,
        "currency": "EUR",
        "customer_id": "u1",
    },
    "ticket_opened": {
        "ticket_id": "t1",
        "customer_id": "u1",
        "team": "billing",
        "priority": "high",
    },
    "agent_replied": {"ticket_id": "t1", "agent_id": "a1", "public": False},
    "customer_replied": {"ticket_id": "t1"},
    "ticket_solved": {"ticket_id": "t1"},
    "ticket_reopened": {"ticket_id": "t1"},
    "ticket_closed": {"ticket_id": "t1"},
    **{
        kind: {
            "response_id": "r1",
            "score": 3,
            "customer_id": "u1",
            "ticket_id": "t1",
            "team": "billing",
            "comment": "fine",
        }
        for kind in ("nps", "csat", "ces")
    },
    "emotion": {
        "response_id": "r1",
        "emotions": ["happy", "frustrated"],
        "customer_id": "u1",
        "ticket_id": "t1",
        "team": "billing",
        "comment": "fine",
    },
    "review": {"response_id": "r1", "text": "Great shop", "rating": 5, "customer_id": "u1"},
    "mention": {"response_id": "r1", "text": "Love this brand"},
    "signed_up": {"user_id": "u1"},
    "session_started": {"user_id": "u1", "session_id": "s1"},
    "page_viewed": {"user_id": "u1", "session_id": "s1", "page": "/pricing?utm=" + "x" * 5000},
    "feature_used": {"user_id": "u1", "session_id": "s1", "feature": "export"},
    "value_reached": {"user_id": "u1", "milestone": "first report"},
    "session_ended": {"user_id": "u1", "session_id": "s1"},
}
REQUIRED = {
    **{kind: ("cart_id",) for kind in CONTRACT_TYPES["cart-events"]},
    **{kind: ("ticket_id",) for kind in CONTRACT_TYPES["tickets"]},
    **{kind: ("response_id", "score") for kind in ("nps", "csat", "ces")},
    "emotion": ("response_id", "emotions"),
    "review": ("response_id", "text"),
    "mention": ("response_id", "text"),
    "signed_up": ("user_id",),
    "session_started": ("user_id", "session_id"),
    "page_viewed": ("user_id", "session_id"),
    "feature_used": ("user_id", "feature"),
    "value_reached": ("user_id",),
    "session_ended": ("user_id", "session_id"),
}
SCALE = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
# Only keywords that fastjsonschema and jsonschema both implement the same way.
ALLOWED_KEYWORDS = {
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "enum",
    "const",
    "required",
    "properties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "format",
    "allOf",
    "if",
    "then",
    # arrays of strings only (emotions): fastjsonschema's uniqueItems compares them as jsonschema
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
}


def event(kind: str, **changes: Any) -> dict[str, Any]:
    """A full valid event of `kind`, with fields changed (None removes one)."""
    body = {**ENVELOPE, "type": kind, "channel": "web", "region": "eu", **FULL[kind]}
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


@cache
def reference(topic: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        load_schema(topic), format_checker=jsonschema.FormatChecker()
    )


def verdicts(topic: str, obj: object) -> tuple[bool, bool]:
    """(fast validator says valid, reference validator says valid)."""
    return schema_error(topic, obj) is None, reference(topic).is_valid(obj)


def assert_valid(topic: str, obj: object) -> None:
    assert schema_error(topic, obj) is None
    assert reference(topic).is_valid(obj), list(reference(topic).iter_errors(obj))


def assert_invalid(topic: str, obj: object) -> None:
    assert schema_error(topic, obj) is not None, obj
    assert not reference(topic).is_valid(obj), obj


def test_contract_constants() -> None:
    assert SOURCE_TOPICS == ("cart-events", "tickets", "survey-replies", "activity")
    assert KEY_FIELD == {
        "cart-events": "cart_id",
        "tickets": "ticket_id",
        "survey-replies": "response_id",
        "activity": "user_id",
    }
    assert set(SUPPORTED_SCHEMA_VERSIONS) == {1}
    assert TYPES_BY_TOPIC == CONTRACT_TYPES
    assert TOPIC_OF_TYPE["order_placed"] == "cart-events"
    assert TOPIC_OF_TYPE["ticket_closed"] == "tickets"
    assert TOPIC_OF_TYPE["ces"] == "survey-replies"
    assert TOPIC_OF_TYPE["page_viewed"] == "activity"
    assert dead_letter_topic("tickets") == "tickets.dlq"
    assert dead_letter_topic("activity") == "activity.dlq"


def test_schema_files_live_in_the_repository_schemas_folder() -> None:
    for topic in SOURCE_TOPICS:
        path = schema_path(topic)
        assert path.parent.name == "schemas"
        assert path.name == f"{topic}.schema.json"
        assert path.is_file()
    with pytest.raises(KeyError):
        schema_path("cart-events.dlq")


def test_load_schema_returns_a_copy_callers_may_change() -> None:
    schema = load_schema("tickets")
    schema["properties"].clear()
    assert load_schema("tickets")["properties"]


@pytest.mark.parametrize("topic", SOURCE_TOPICS)
def test_schemas_are_draft_2020_12_and_portable(topic: str) -> None:
    schema = load_schema(topic)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{topic}.schema.json")
    assert schema["title"]
    assert schema["description"]
    assert schema.get("additionalProperties", True) is not False

    def walk(node: dict[str, Any], where: str) -> None:
        assert set(node) <= ALLOWED_KEYWORDS, (where, set(node) - ALLOWED_KEYWORDS)
        for name, sub in node.get("properties", {}).items():
            if where.endswith(".if"):  # the type test of a branch is not a property definition
                continue
            assert sub.get("description"), f"{where}.properties.{name} has no description"
            walk(sub, f"{where}.properties.{name}")
        for index, branch in enumerate(node.get("allOf", ())):
            walk(branch["if"], f"{where}.allOf[{index}].if")
            walk(branch["then"], f"{where}.allOf[{index}].then")

    walk(schema, topic)


def test_contract_example_validates() -> None:
    assert_valid("survey-replies", CONTRACT_EXAMPLE)


@pytest.mark.parametrize("kind", sorted(FULL))
def test_every_type_validates_with_all_and_with_only_required_fields(kind: str) -> None:
    topic = TOPIC_OF_TYPE[kind]
    assert_valid(topic, event(kind))
    minimal = {**ENVELOPE, "type": kind, **{name: FULL[kind][name] for name in REQUIRED[kind]}}
    assert_valid(topic, minimal)


@pytest.mark.parametrize("kind", sorted(FULL))
def test_every_required_field_is_required(kind: str) -> None:
    topic = TOPIC_OF_TYPE[kind]
    for name in ("event_id", "type", "occurred_at", *REQUIRED[kind]):
        assert_invalid(topic, event(kind, **{name: None}))


def test_unknown_extra_fields_are_allowed() -> None:
    extra = {"extra": {"nested": [1, 2]}, "source_system": "pos-17", "sku_count": None}
    assert_valid("cart-events", {**event("order_placed"), **extra})
    assert_valid("survey-replies", {**CONTRACT_EXAMPLE, **extra})


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-23T10:15:00Z",
        "2026-11-23T10:15:00.123Z",
        "2026-11-23T10:15:00.123456789Z",
        "2026-11-23T11:15:00+01:00",
        "2026-11-23T05:15:00-05:00",
        "2026-11-23T10:15:00-00:00",
        "2028-02-29T00:00:00Z",
        "2000-02-29T23:59:59.9+23:59",
    ],
)
def test_rfc3339_timestamps_with_offset_pass(timestamp: str) -> None:
    assert_valid("tickets", event("ticket_solved", occurred_at=timestamp))


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-23 10:15",
        "2026-11-23T10:15:00",  # no offset
        "2026-11-23T10:15:00.123",  # no offset
        "2026-11-23 10:15:00Z",
        "2026-11-23T10:15Z",
        "2026-11-23t10:15:00z",
        "2026-11-23T10:15:00+0100",
        "2026-11-23T10:15:00+01",
        "2026-11-23T10:15:00 +01:00",
        "2026-11-23T24:00:00Z",
        "2026-11-23T10:60:00Z",
        "2026-11-23T10:15:60Z",
        "2026-11-23T10:15:00+24:00",
        "2026-13-01T10:15:00Z",
        "2026-02-29T10:15:00Z",
        "2100-02-29T10:15:00Z",
        "2026-04-31T10:15:00Z",
        "0000-01-01T00:00:00Z",
        "2026-11-23T10:15:00.Z",
        "2026-11-23T10:15:00Z\n",
        " 2026-11-23T10:15:00Z",
        "20261123T101500Z",
        "",
        1_795_428_900,
        None,
    ],
)
def test_bad_timestamps_fail_in_both_validators(timestamp: object) -> None:
    assert_invalid("tickets", {**event("ticket_solved"), "occurred_at": timestamp})


@pytest.mark.parametrize(("kind", "bounds"), sorted(SCALE.items()))
def test_score_range_per_survey_type(kind: str, bounds: tuple[int, int]) -> None:
    low, high = bounds
    for score in range(low, high + 1):
        assert_valid("survey-replies", event(kind, score=score))
    for score in (low - 1, high + 1, -100, 100):
        assert_invalid("survey-replies", event(kind, score=score))
    for score in (str(high), high - 0.5, True, [high]):
        assert_invalid("survey-replies", {**event(kind), "score": score})


def test_score_error_reads_like_the_fast_validator_message() -> None:
    reason = schema_error("survey-replies", event("nps", score=11))
    assert reason == "data.score must be smaller than or equal to 10"


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("item_added", "quantity", 0),
        ("item_added", "quantity", 1.5),
        ("item_added", "quantity", "2"),
        ("item_removed", "quantity", -1),
        ("item_added", "unit_price", -0.01),
        ("item_added", "unit_price", "9.99"),
        ("item_added", "upsell", "yes"),
        ("item_added", "upsell", 1),
        ("item_added", "sku", ""),
        ("order_placed", "amount", -1),
        ("order_placed", "amount", "19.98"),
        ("order_placed", "currency", "eur"),
        ("order_placed", "currency", "EURO"),
        ("order_placed", "currency", "E1R"),
        ("order_placed", "order_id", 17),
        ("cart_created", "cart_id", ""),
        ("cart_created", "cart_id", 42),
        ("cart_created", "customer_id", "u" * 129),
        ("ticket_opened", "priority", "critical"),
        ("ticket_opened", "priority", "High"),
        ("ticket_opened", "team", ""),
        ("ticket_opened", "team", "t" * 129),
        ("agent_replied", "public", "true"),
        ("agent_replied", "agent_id", None),
        ("ticket_solved", "ticket_id", ["t1"]),
        ("nps", "response_id", ""),
        ("nps", "comment", 5),
        ("csat", "ticket_id", 7),
        ("ces", "team", False),
        ("ces", "event_id", ""),
        ("ces", "event_id", "e" * 129),
        ("ces", "event_id", 12),
        ("nps", "schema_version", 0),
        ("nps", "schema_version", "1"),
        ("nps", "schema_version", 1.5),
        ("nps", "channel", ""),
        ("nps", "channel", "c" * 129),
        ("nps", "region", 3),
        ("nps", "type", "NPS"),
        ("nps", "type", "item_added"),  # a type of another topic
        ("nps", "type", "survey"),
        ("nps", "type", None),
        ("nps", "type", 1),
        ("emotion", "emotions", []),
        ("emotion", "emotions", ["happy", "happy"]),
        ("emotion", "emotions", ["happy", "safe", "valued", "focused", "pleased", "trusting"]),
        ("emotion", "emotions", ["joyful"]),
        ("emotion", "emotions", ["Happy"]),
        ("emotion", "emotions", "happy"),
        ("emotion", "emotions", [1]),
        ("emotion", "emotions", None),
        ("review", "text", None),
        ("review", "text", ""),
        ("review", "text", "x" * 5001),
        ("review", "text", 5),
        ("review", "rating", 0),
        ("review", "rating", 6),
        ("review", "rating", 4.5),
        ("review", "rating", "5"),
        ("mention", "text", None),
        ("mention", "text", "x" * 5001),
        ("mention", "response_id", None),
        ("signed_up", "user_id", ""),
        ("signed_up", "user_id", "u" * 129),
        ("signed_up", "user_id", 42),
        ("session_started", "session_id", None),
        ("session_started", "session_id", ""),
        ("page_viewed", "session_id", None),
        ("page_viewed", "page", ""),
        ("page_viewed", "page", 3),
        ("feature_used", "feature", None),
        ("feature_used", "feature", ""),
        ("feature_used", "feature", "f" * 129),
        ("feature_used", "session_id", 7),
        ("value_reached", "milestone", ""),
        ("session_ended", "session_id", None),
        ("session_ended", "type", "session_closed"),
    ],
)
def test_violations_fail_in_both_validators(kind: str, field: str, value: object) -> None:
    assert_invalid(TOPIC_OF_TYPE[kind], {**event(kind), field: value})


def test_identifier_length_bounds() -> None:
    assert_valid("cart-events", event("checkout_started", event_id="e" * 128, cart_id="c" * 128))
    assert_valid("cart-events", event("checkout_started", event_id="e", cart_id="c"))
    assert_invalid("cart-events", event("checkout_started", event_id="e" * 129))
    assert_invalid("cart-events", event("checkout_started", cart_id="c" * 129))


def test_schema_version_any_positive_integer_passes_the_schema() -> None:
    # unknown future versions are the decoder's call (dead-lettered there), not a schema error
    assert_valid("tickets", event("ticket_closed", schema_version=1))
    assert_valid("tickets", event("ticket_closed", schema_version=7))


class Hostile:
    """A value whose comparisons blow up."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing me")

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "obj",
    [None, [], "nps", 9, 1.5, True, b"{}", {}, {"type": "nps"}, {1: 2}, {"type": Hostile()}],
)
def test_schema_error_never_raises(obj: object) -> None:
    for topic in SOURCE_TOPICS:
        reason = schema_error(topic, obj)
        assert isinstance(reason, str)
        assert reason


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.sampled_from(
        [
            *TOPIC_OF_TYPE,
            "2026-11-23T10:15:00Z",
            "2026-11-23T10:15:00",
            "2026-02-30T10:15:00Z",
            "EUR",
            "eur",
            "urgent",
            "x" * 128,
            "x" * 129,
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.mark.parametrize("topic", SOURCE_TOPICS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_both_validators_agree_on_mutated_events(topic: str, data: st.DataObject) -> None:
    kinds = sorted(TYPES_BY_TOPIC[topic])
    obj = event(data.draw(st.sampled_from(kinds)))
    names = sorted({*obj, *load_schema(topic)["properties"], "extra"})
    for name in data.draw(st.lists(st.sampled_from(names), max_size=3)):
        if data.draw(st.booleans()):
            obj.pop(name, None)
        else:
            obj[name] = data.draw(values)
    fast, ref = verdicts(topic, obj)
    assert fast == ref, (obj, schema_error(topic, obj))


def test_voice_of_the_customer_bounds() -> None:
    """events.md: text 1-5,000 characters, 1-5 distinct emotions of the vocabulary, rating 1-5
    and optional; a comment has no length of its own (only the record's size limit)."""
    topic = "survey-replies"
    for text in ("x", "é" * 5000, "🙂" * 5000):
        assert_valid(topic, event("review", text=text))
        assert_valid(topic, event("mention", text=text))
    assert_valid(topic, event("review", rating=None))
    for rating in range(1, 6):
        assert_valid(topic, event("review", rating=rating))
    five = ["happy", "safe", "valued", "stressed", "hurried"]
    assert_valid(topic, event("emotion", emotions=five))
    assert_valid(topic, event("nps", comment="x" * 20_000))


def test_activity_bounds() -> None:
    """events.md, `activity`: a page is unbounded (only the record's size limit bounds it), a
    feature_used without session_id is valid (it belongs to no session), and value_reached needs
    no milestone."""
    topic = "activity"
    assert_valid(topic, event("page_viewed", page="/" + "p" * 20_000))
    assert_valid(topic, event("page_viewed", page=None))
    assert_valid(topic, event("feature_used", session_id=None))
    assert_valid(topic, event("value_reached", milestone=None))
    assert_valid(topic, event("signed_up", session_id="s1"))  # an extra field is ignored
