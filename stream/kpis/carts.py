"""Cart sessions: abandonment, conversion, order value and upsell (docs/semantics.md, "Carts").

A cart's facts split into sessions by inactivity gaps and by `order_placed`. A session with items
converts at its order or is abandoned `timeout` after its last event; both outcomes land in the
bucket of their outcome time. Everything is recomputed from the facts, so a late event inside
grace (an order after the abandonment was flagged) revises the outcome exactly.

The customer of an order is the order's own `customer_id`, else that of the latest
`cart_created` of its cart before it (both already pseudonymous keys, see
stream/contract/customers.py). An order is decided when its session is forgotten: from then on
any event that could change it is late. A cart keeps the customer of its forgotten sessions as
one small fact while later sessions remain, and remembers it for `retention` after the cart's
last event once no session remains, so an order after a return visit hours or days later still
finds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.contract.events import Event
from stream.kpis import MICROS, segment_name, shared
from stream.kpis.customers import CustomerOrder, order_identity
from stream.state.facts import OVERALL, Contribution, Fact, Segments
from stream.state.segments import UNKNOWN, SegmentNames
from stream.state.windows import bucket_end

CREATED, ITEM, REMOVED, CHECKOUT, ORDER = "c", "i", "r", "k", "o"
#: The customer of a cart's forgotten sessions, at the time of their last event: in no session.
CUSTOMER = "u"
_KIND = {
    "cart_created": CREATED,
    "item_added": ITEM,
    "item_removed": REMOVED,
    "checkout_started": CHECKOUT,
    "order_placed": ORDER,
}
# fact = (t, rank, event_id, kind, channel, region, extra); extra: the upsell flag (item), the
# customer key or None (created, customer), or [micros, currency, customer key or None] (order)
_T, _ID, _KIND_AT, _CHANNEL, _REGION, _EXTRA = 0, 2, 3, 4, 5, 6


@dataclass
class Session:
    """Consecutive events of one cart without an inactivity gap, ended by an order or a gap."""

    facts: list[Fact] = field(default_factory=list)
    order_t: int | None = None

    @property
    def first(self) -> int:
        return self.facts[0][_T]

    @property
    def last(self) -> int:
        return self.facts[-1][_T]

    def has(self, kind: str) -> bool:
        return any(f[_KIND_AT] == kind for f in self.facts)

    def segment(self, index: int) -> str:
        return next((f[index] for f in self.facts if f[index] is not None), UNKNOWN)


def split_sessions(facts: list[Fact], timeout_ms: int) -> list[Session]:
    """Sessions of a cart from its facts sorted by (t, rank, event_id)."""
    sessions: list[Session] = []
    current: Session | None = None
    for fact in facts:
        if fact[_KIND_AT] == CUSTOMER:
            continue
        if current is None or current.order_t is not None or fact[_T] - current.last >= timeout_ms:
            current = Session()
            sessions.append(current)
        current.facts.append(fact)
        if fact[_KIND_AT] == ORDER:
            current.order_t = fact[_T]
    return sessions


class CartRules:
    """KPI rules of the `cart-events` topic."""

    topic = "cart-events"
    dimensions = ("channel", "region", "currency")

    def __init__(
        self, *, timeout_ms: int, step_ms: int, grace_ms: int, retention_ms: int = 7 * 86_400_000
    ) -> None:
        self.timeout_ms = timeout_ms
        self.step_ms = step_ms
        self.grace_ms = grace_ms
        self.retention_ms = retention_ms

    def fact(self, event: Event, names: SegmentNames) -> Fact:
        kind = _KIND[event.type]
        body = event.body
        extra: object = None
        if kind == ITEM:
            extra = bool(body.get("upsell", False))
        elif kind == CREATED:
            extra = body.get("customer_id")
        elif kind == ORDER:
            amount = body.get("amount")
            micros = None if amount is None else round(amount * MICROS)
            currency = segment_name(names, "currency", body) or UNKNOWN
            extra = [micros, currency, body.get("customer_id")]
        return (
            event.t,
            1 if kind == ORDER else 0,
            event.event_id,
            kind,
            segment_name(names, "channel", body),
            segment_name(names, "region", body),
            extra,
        )

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        out: list[Contribution] = []
        for session in split_sessions(facts, self.timeout_ms):
            segments: Segments = shared(
                (
                    OVERALL,
                    ("channel", session.segment(_CHANNEL)),
                    ("region", session.segment(_REGION)),
                )
            )
            created = next((f[_T] for f in session.facts if f[_KIND_AT] in (CREATED, ITEM)), None)
            if created is not None:
                out.append((created, "carts_created", segments, 1))
            if session.order_t is not None:
                out.extend(self._order(session, segments))
            if not session.has(ITEM):
                continue
            if session.order_t is not None:
                at, outcome = session.order_t, "converted"
            elif stream_time >= session.last + self.timeout_ms:
                at, outcome = session.last + self.timeout_ms, "abandoned"
            else:
                continue
            out.append((at, f"cart_{outcome}", segments, 1))
            if session.has(CHECKOUT):
                out.append((at, f"checkout_{outcome}", segments, 1))
        return out

    @staticmethod
    def _order(session: Session, segments: Segments) -> list[Contribution]:
        """An order: counted, its amount by currency (when given), and whether it was upsold."""
        at = session.order_t
        assert at is not None
        micros, currency, _ = session.facts[-1][_EXTRA]
        out: list[Contribution] = [(at, "orders", segments, 1)]
        if micros is not None:
            out.append((at, f"priced_orders:{currency}", segments, 1))
            out.append((at, f"order_amount_micros:{currency}", segments, micros))
        if any(f[_KIND_AT] == ITEM and f[_EXTRA] for f in session.facts):
            out.append((at, "upsell_orders", segments, 1))
        return out

    def _final_at(self, session: Session, stream_time: int) -> int | None:
        """When a session's outcome became final, or None while it is still open."""
        if session.order_t is not None:
            return session.order_t
        end = session.last + self.timeout_ms
        return end if stream_time >= end else None

    def _forget_at(self, final_at: int) -> int:
        """From this stream time on, any event that could change the session is late."""
        return bucket_end(final_at, self.step_ms) + self.grace_ms + 1

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        due: list[int] = []
        for session in split_sessions(facts, self.timeout_ms):
            final_at = self._final_at(session, stream_time)
            if final_at is None:
                due.append(session.last + self.timeout_ms)
            else:
                due.append(self._forget_at(final_at))
        return min(due) if due else None

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        """The sessions still open or within grace, after one fact for the customer of those
        forgotten (they come first: forgetting follows time)."""
        earlier = [f for f in facts if f[_KIND_AT] == CUSTOMER]
        kept: list[Fact] = []
        gone = list(earlier)
        for session in split_sessions(facts, self.timeout_ms):
            final_at = self._final_at(session, stream_time)
            if final_at is None or stream_time < self._forget_at(final_at):
                kept.extend(session.facts)
            else:
                gone.extend(session.facts)
        if not kept or len(gone) == len(earlier):
            return [*earlier, *kept] if kept else []
        customer = _latest_customer(gone)
        if customer is None:
            return kept
        return [(gone[-1][_T], 0, "", CUSTOMER, None, None, customer), *kept]

    def remember(self, facts: list[Fact]) -> tuple[int, bytes] | None:
        """The customer of a cart none of whose sessions is kept, for the retention after the
        cart's last event."""
        customer = _latest_customer(facts)
        if customer is None:
            return None
        return facts[-1][_T] + self.retention_ms, customer.encode()

    def recall(self, until: int, payload: bytes) -> list[Fact]:
        """The customer fact of a remembered cart, at its last event's time."""
        return [(until - self.retention_ms, 0, "", CUSTOMER, None, None, payload.decode())]

    def watermark(self, stream_time: int) -> int:
        """Every order up to this time has been decided at this stream time: an order is
        decided once its session is forgotten, at most a step and grace after it."""
        return stream_time - self.step_ms - self.grace_ms - 1

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[CustomerOrder]:
        """The orders among the facts no longer kept, each with its customer: they can no
        longer change, so they can be forwarded to their customer's partition, once."""
        out: list[CustomerOrder] = []
        remaining = {f[_ID] for f in kept}
        cart_customer: str | None = None
        for fact in facts:
            kind, extra = fact[_KIND_AT], fact[_EXTRA]
            if kind in (CREATED, CUSTOMER) and extra is not None:
                cart_customer = extra
            elif kind == ORDER and fact[_ID] not in remaining:
                micros, currency, own = extra
                customer = own or cart_customer
                identity = order_identity(key, fact[_ID])
                out.append(CustomerOrder(customer, fact[_T], micros, currency, identity))
        return out


def _latest_customer(facts: list[Fact]) -> str | None:
    """The customer of the latest `cart_created` with one among facts sorted by time (a
    customer fact counts as one)."""
    found = None
    for fact in facts:
        if fact[_KIND_AT] in (CREATED, CUSTOMER) and fact[_EXTRA] is not None:
            found = fact[_EXTRA]
    return found
