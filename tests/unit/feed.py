"""A test feed: applies hand-written events to a fresh partition state and reads its KPIs."""

from __future__ import annotations

from typing import Any

from stream.contract.events import Event
from stream.kpis.carts import CartRules
from stream.kpis.surveys import SurveyRules
from stream.kpis.tickets import TicketRules
from stream.publish.document import render
from stream.publish.entries import partition_entry
from stream.publish.merge import merge
from stream.state.partition import PartitionState, StateConfig

MIN = 60_000
CONFIG = StateConfig(
    step_ms=MIN, grace_ms=5 * MIN, windows_ms=(5 * MIN, 60 * MIN), max_segment_values=20
)
T0 = 1_800_000_000_000 - 1_800_000_000_000 % (60 * MIN)  # a whole hour


def rules_for(topic: str) -> Any:
    if topic == "cart-events":
        return CartRules(timeout_ms=30 * MIN, step_ms=MIN, grace_ms=5 * MIN)
    if topic == "tickets":
        return TicketRules(step_ms=MIN, grace_ms=5 * MIN, retention_ms=7 * 24 * 60 * MIN)
    return SurveyRules(step_ms=MIN, grace_ms=5 * MIN)


class Feed:
    """Applies events to a fresh partition state, numbering offsets."""

    def __init__(self, topic: str, partition: int = 0) -> None:
        self.topic = topic
        self.state = PartitionState(topic, partition, rules_for(topic), CONFIG)
        self.offset = -1
        self.n = 0

    def __call__(
        self, key: str, kind: str, minute: float, event_id: str | None = None, **body: Any
    ) -> str:
        self.offset += 1
        self.n += 1
        field = {"cart-events": "cart_id", "tickets": "ticket_id"}.get(self.topic, "response_id")
        body = {"type": kind, field: key, **body}
        event = Event(self.topic, key, event_id or f"e{self.n}", kind, T0 + int(minute * MIN), body)
        return self.state.apply(event, self.offset)

    def document(self) -> dict[str, Any]:
        return render(
            merge([partition_entry(self.state)]),
            CONFIG.windows_ms,
            {self.topic: 1},
            max_values=CONFIG.max_segment_values,
        )

    def kpi(self, name: str, window: str = "1h") -> dict[str, Any]:
        return self.document()["windows"][window][name]
