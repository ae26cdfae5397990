"""Realistic synthetic events for all four topics, deterministic for given arguments.

Event i occurs at start + i/rate, so event time is evenly spread and monotone. At each slot the
generator emits the earliest due event of an entity already under way (a cart's next item, a
ticket's reply or solve), or else starts a new cart, ticket or survey response, so many entities
interleave as they do in production. A started entity schedules all its later events at once, at
future event times, in a heap keyed by due time.

Shoppers come back: a cart belongs to a returning customer (one of those who have not stopped
buying), a new one, or nobody known. Every order gives its customer a chance to stop buying
(churn), so a long run has regulars with orders weeks apart, customers who left, and anonymous
orders. The customer id is on the order, or only on the cart's `cart_created`.

Product activity (stream/tools/activity.py) takes `activity_share` of the slots that start
something (more around 14:00 UTC, fewer at night and at weekends), from a random stream of its
own: the carts, tickets and replies of a seed stay the same ones in the same order.

The topic shares of a `Profile` are shares of events. Entities are started in proportion to
share ÷ expected events per entity, so the mix matches once the run is longer than an entity's
life; in a shorter run the late events of long-lived tickets (solves, closes) are still pending.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stream.tools import voices
from stream.tools.activity import Activity
from stream.tools.shift import Shift


@dataclass(frozen=True)
class Profile:
    """The shape of the generated traffic."""

    abandon_share: float = 0.7  # share of cart sessions that end without an order
    checkout_share_of_abandoned: float = 0.3
    resolution_median_s: float = 4 * 3600  # log-normal ticket resolution time (first solve)
    resolution_sigma: float = 0.8
    first_reply_median_s: float = 20 * 60  # log-normal, capped below the resolution time
    promoter_share: float = 0.5  # detractors = the rest: NPS about +30
    passive_share: float = 0.3
    cart_share: float = 0.5  # of events
    ticket_share: float = 0.3
    survey_share: float = 0.2
    channels: tuple[str, ...] = ("web", "app", "store")
    regions: tuple[str, ...] = ("eu", "us", "apac")
    teams: tuple[str, ...] = ("billing", "shipping", "returns", "tech")
    returning_share: float = 0.6  # of carts of a known customer: one who bought or looked before
    churn_share: float = 0.25  # after each order, the customer stops buying
    anonymous_share: float = 0.15  # of carts: no customer id anywhere
    order_customer_share: float = 0.5  # of known customers' carts: the id is on the order
    shift: Shift | None = None  # a change injected into one segment (stream/tools/shift.py)
    activity_share: float = 0.03  # of the slots that start something: a user's session

    @classmethod
    def with_resolution_median(cls, median_s: float) -> Profile:
        """The default traffic with tickets solved after about median_s (first replies come
        sooner in proportion)."""
        return cls(
            resolution_median_s=median_s,
            first_reply_median_s=min(cls.first_reply_median_s, median_s / 4),
        )

    def __post_init__(self) -> None:
        """Reject a profile that would silently generate something else than asked."""
        shares = (
            "abandon_share",
            "checkout_share_of_abandoned",
            "promoter_share",
            "returning_share",
            "churn_share",
            "anonymous_share",
            "order_customer_share",
            "activity_share",
        )
        for name in shares:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0 <= self.passive_share <= 1 - self.promoter_share:
            raise ValueError("passive_share must be between 0 and 1 - promoter_share")
        if self.resolution_median_s <= 0 or self.first_reply_median_s <= 0:
            raise ValueError("resolution_median_s and first_reply_median_s must be positive")
        if self.resolution_sigma < 0:
            raise ValueError("resolution_sigma must not be negative")
        shares = (self.cart_share, self.ticket_share, self.survey_share)
        if min(shares) < 0 or sum(shares) <= 0:
            raise ValueError("topic shares must not be negative and must not all be zero")
        for name in ("channels", "regions", "teams"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")


DEFAULT_PROFILE = Profile()

# The fixed parts of the shape, named so that the expected events per entity can be derived.
CART_CREATED_SHARE = 0.8  # otherwise the first item_added creates the cart
MAX_ITEMS = 5  # item_added per cart: uniform 1..MAX_ITEMS
REMOVE_SHARE = 0.15  # after each item_added but the first: an earlier line is taken out
UPSELL_SHARE = 0.2  # of items after the first: taken from an add-on offer
CART_GAP_S = (5.0, 90.0)  # between two events of a cart
PRIVATE_NOTE_SHARE = 0.2  # tickets with an internal note before the first public reply
CUSTOMER_REPLY_SHARE = 0.4  # tickets where the customer answers and the agent replies again
REOPEN_SHARE = 0.1  # solved tickets reopened: reply, then solved again
#: Solved tickets the customer reopens days later (reopen, reply, solve; closed only after).
LATE_REOPEN_SHARE = 0.03
LATE_REOPEN_AFTER_S = (7 * 86400.0, 12 * 86400.0)
#: Abandoned carts of a shopper known at `cart_created` who comes back hours or days later and
#: orders (item, checkout, order) without a customer id: the order is the cart's customer's.
CART_RETURN_SHARE = 0.2
CART_RETURN_AFTER_S = (2 * 3600.0, 9 * 86400.0)  # some beyond the 7 d cart retention
FIRST_REPLY_SIGMA = 0.7
CLOSE_AFTER_S = (600.0, 3600.0)  # solve to close
#: The topics whose entities (carts, tickets, responses) are drawn from the main random stream,
#: in the order they always were: activity has a stream of its own, so adding it changed no log.
ENTITY_TOPICS = ("cart-events", "tickets", "survey-replies")
SURVEY_KINDS = ("nps", "csat", "ces", "emotion", "review", "mention")
SURVEY_WEIGHTS = (0.45, 0.18, 0.12, 0.1, 0.1, 0.05)
SURVEY_CUSTOMER_SHARE = 0.6
SURVEY_TICKET_SHARE = 0.3
SURVEY_COMMENT_SHARE = 0.3
#: Scores from which an answer is good (promoter, satisfied, easy), and up to which it is bad.
SCALE_GOOD = {"nps": 9, "csat": 4, "ces": 5}
SCALE_BAD = {"nps": 6, "csat": 2, "ces": 3}
DETRACTOR_WEIGHTS = (1, 1, 1, 2, 3, 5, 7)  # scores 0..6: most detractors answer 5 or 6
CSAT_WEIGHTS = (5, 7, 10, 33, 45)  # scores 1..5: about 78 % answer 4 or 5
CES_WEIGHTS = (3, 5, 8, 14, 25, 25, 20)  # scores 1..7: about 70 % answer 5-7
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_WEIGHTS = (0.25, 0.5, 0.18, 0.07)
CURRENCIES = ("EUR", "USD")


def expected_events(profile: Profile) -> dict[str, float]:
    """Mean number of events of one cart, ticket and survey response (all of its life)."""
    mean_items = (1 + MAX_ITEMS) / 2
    orders = 1 - profile.abandon_share
    checkouts = orders + profile.abandon_share * profile.checkout_share_of_abandoned
    cart = CART_CREATED_SHARE + mean_items + REMOVE_SHARE * (mean_items - 1) + checkouts + orders
    known_on_cart = (1 - profile.anonymous_share) * (1 - profile.order_customer_share)
    cart += 3 * CART_CREATED_SHARE * known_on_cart * profile.abandon_share * CART_RETURN_SHARE
    # opened, public reply, solved, closed; reply pairs; reopen, reply, solve again (soon after
    # the solve, or days later)
    ticket = 4 + PRIVATE_NOTE_SHARE + 2 * CUSTOMER_REPLY_SHARE
    ticket += 3 * (REOPEN_SHARE + LATE_REOPEN_SHARE)
    return {"cart-events": cart, "tickets": ticket, "survey-replies": 1.0}


def _timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds (cut, not rounded), as strftime("%Y-%m-%dT%H:%M:%S.")
    writes it (an unpadded year), in a third less time: one per event."""
    m = moment
    return (
        f"{m.year}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}Z"
    )


class _Generator:
    """The random state and the pending events of one run."""

    def __init__(self, seed: int, start: datetime, profile: Profile) -> None:
        self.rng = random.Random(seed)
        # Customers draw from their own stream: the carts, tickets and surveys of a seed stay
        # what they were before carts had customers.
        self.shoppers = random.Random(f"{seed}|customers")
        # So do the late returns of carts and tickets.
        self.returns = random.Random(f"{seed}|returns")
        self.profile = profile
        # Ids differ between runs with other arguments, so two runs do not share keys.
        self.run = hashlib.blake2b(
            f"{seed}|{start.isoformat()}".encode(), digest_size=4
        ).hexdigest()
        self.pending: list[tuple[float, int, dict[str, Any]]] = []  # (due s, seq, event)
        self.seq = 0
        self.counters: dict[str, int] = {}
        self.customers: list[str] = []  # who may still buy, each once
        self.place: dict[str, int] = {}  # customer -> index in customers
        shares = {
            "cart-events": profile.cart_share,
            "tickets": profile.ticket_share,
            "survey-replies": profile.survey_share,
        }
        self.activity = Activity(seed, profile.channels, profile.regions, self._id)
        self.origin_s = start.timestamp()
        per_entity = expected_events(profile)
        self.topic_weights = tuple(shares[topic] / per_entity[topic] for topic in ENTITY_TOPICS)

    def event_id(self, i: int) -> str:
        """UUID-shaped like a real producer's, yet reproducible: a hash of the run and slot,
        written as str(uuid.UUID(bytes=digest, version=4)) writes it (version nibble 4, variant
        bits 10), in half the time: one per event."""
        h = hashlib.blake2b(f"{self.run}/{i}".encode(), digest_size=16).hexdigest()
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def _id(self, prefix: str) -> str:
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return f"{prefix}-{self.run}-{n}"

    def _later(self, due: float, event: dict[str, Any]) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (due, self.seq, event))

    def next_event(self, now: float) -> dict[str, Any]:
        """The earliest event due by `now`, else the first event of a new entity."""
        if self.pending and self.pending[0][0] <= now:
            return heapq.heappop(self.pending)[2]
        if self.activity.starts(self.profile.activity_share, self.origin_s + now):
            return self.activity.session(now, self._later)
        topic = self.rng.choices(ENTITY_TOPICS, weights=self.topic_weights)[0]
        if topic == "cart-events":
            return self._cart(now)
        if topic == "tickets":
            return self._ticket(now)
        return self._survey(now)

    def _segments(self) -> dict[str, str]:
        rng, p = self.rng, self.profile
        return {"channel": rng.choice(p.channels), "region": rng.choice(p.regions)}

    def _shopper(self) -> str | None:
        """The customer of a new cart: a returning one, a new one, or None (anonymous)."""
        rng, p = self.shoppers, self.profile
        if rng.random() < p.anonymous_share:
            return None
        if self.customers and rng.random() < p.returning_share:
            return rng.choice(self.customers)
        customer = self._id("cust")
        self.place[customer] = len(self.customers)
        self.customers.append(customer)
        return customer

    def _stop_buying(self, customer: str) -> None:
        """The customer churns: no later cart is theirs."""
        index, last = self.place.pop(customer), self.customers.pop()
        if last != customer:
            self.customers[index], self.place[last] = last, index

    def _cart(self, now: float) -> dict[str, Any]:
        """A cart session: created, items added and removed, maybe checkout and order."""
        rng, p = self.rng, self.profile
        cart = {"cart_id": self._id("cart"), **self._segments()}
        events: list[dict[str, Any]] = []
        created = rng.random() < CART_CREATED_SHARE
        customer = self._shopper()
        on_order = customer is not None and (
            not created or self.shoppers.random() < p.order_customer_share
        )
        if created:
            who = {} if customer is None or on_order else {"customer_id": customer}
            events.append({"type": "cart_created", **cart, **who})
        lines: list[tuple[str, int, list[int]]] = []  # sku, unit price in cents, [units held]
        for n in range(rng.randint(1, MAX_ITEMS)):
            sku = f"sku-{rng.randint(10000, 99999)}"
            quantity = rng.choices((1, 2, 3), weights=(0.75, 0.18, 0.07))[0]
            cents = rng.randint(299, 12999)
            upsell = n > 0 and rng.random() < UPSELL_SHARE
            line = {"sku": sku, "quantity": quantity, "unit_price": cents / 100, "upsell": upsell}
            events.append({"type": "item_added", **cart, **line})
            if n > 0 and rng.random() < REMOVE_SHARE:
                # from an earlier line: the previous line is still whole, so there is one, and
                # the line just added stays, so the cart is never empty
                removed, _, held = rng.choice([line for line in lines if line[2][0] > 0])
                units = rng.randint(1, held[0])
                held[0] -= units
                events.append({"type": "item_removed", **cart, "sku": removed, "quantity": units})
            lines.append((sku, cents, [quantity]))
        abandon = p.abandon_share
        if p.shift is not None and p.shift.applies("cart_abandonment", now, cart):
            abandon = min(1.0, max(0.0, abandon + p.shift.points / 100))
        converts = rng.random() >= abandon
        if converts or rng.random() < p.checkout_share_of_abandoned:
            events.append({"type": "checkout_started", **cart})
        if converts:
            total = sum(cents * held[0] for _, cents, held in lines)
            events.append(
                {
                    "type": "order_placed",
                    **cart,
                    "order_id": self._id("order"),
                    "amount": total / 100,
                    "currency": rng.choice(CURRENCIES),
                    **({"customer_id": customer} if on_order else {}),
                }
            )
            stops = self.shoppers.random() < p.churn_share
            if customer in self.place and stops:  # (a second cart of theirs may have churned)
                self._stop_buying(customer)
        t = now
        for event in events[1:]:
            t += rng.uniform(*CART_GAP_S)
            self._later(t, event)
        known_on_cart = created and customer is not None and not on_order
        if not converts and known_on_cart and self.returns.random() < CART_RETURN_SHARE:
            held = sum(cents * units[0] for _, cents, units in lines)
            self._cart_return(cart, held, t + self.returns.uniform(*CART_RETURN_AFTER_S))
        return events[0]

    def _cart_return(self, cart: dict[str, Any], held_cents: int, t: float) -> None:
        """The shopper of an abandoned cart comes back to it, adds an item and orders all it
        holds, without saying who they are: a new session of the same cart."""
        rng = self.returns
        quantity, cents = rng.randint(1, 3), rng.randint(299, 12999)
        line = {"sku": f"sku-{rng.randint(10000, 99999)}", "quantity": quantity}
        total = (held_cents + quantity * cents) / 100
        item = {**line, "unit_price": cents / 100, "upsell": False}
        self._later(t, {"type": "item_added", **cart, **item})
        t += rng.uniform(*CART_GAP_S)
        self._later(t, {"type": "checkout_started", **cart})
        t += rng.uniform(*CART_GAP_S)
        order = {"order_id": self._id("order"), "amount": total, "currency": "EUR"}
        self._later(t, {"type": "order_placed", **cart, **order})

    def _ticket(self, now: float) -> dict[str, Any]:
        """A ticket's life: replies, solve after a log-normal time, maybe reopen, close."""
        rng, p = self.rng, self.profile
        ticket = {"ticket_id": self._id("ticket"), **self._segments()}
        agent = f"agent-{rng.randint(1, 40)}"
        resolution = rng.lognormvariate(math.log(p.resolution_median_s), p.resolution_sigma)
        first_reply = rng.lognormvariate(math.log(p.first_reply_median_s), FIRST_REPLY_SIGMA)
        if first_reply >= resolution:  # the solve keeps its distribution, the reply moves
            first_reply = resolution * rng.uniform(0.2, 0.8)
        reply = {"type": "agent_replied", **ticket, "agent_id": agent, "public": True}
        if rng.random() < PRIVATE_NOTE_SHARE:
            self._later(now + first_reply * rng.uniform(0.1, 0.9), {**reply, "public": False})
        self._later(now + first_reply, reply)
        if rng.random() < CUSTOMER_REPLY_SHARE:
            asked = now + first_reply + (resolution - first_reply) * rng.uniform(0.1, 0.6)
            answered = asked + (now + resolution - asked) * rng.uniform(0.2, 0.8)
            self._later(asked, {"type": "customer_replied", **ticket})
            self._later(answered, reply)
        solved = now + resolution
        self._later(solved, {"type": "ticket_solved", **ticket})
        if rng.random() < REOPEN_SHARE:
            reopened = solved + rng.uniform(0.05, 0.5) * p.resolution_median_s
            again = rng.lognormvariate(math.log(p.resolution_median_s / 2), p.resolution_sigma)
            self._later(reopened, {"type": "ticket_reopened", **ticket})
            self._later(reopened + again * rng.uniform(0.1, 0.6), reply)
            solved = reopened + again
            self._later(solved, {"type": "ticket_solved", **ticket})
        if self.returns.random() < LATE_REOPEN_SHARE:  # the customer writes back days later
            reopened = solved + self.returns.uniform(*LATE_REOPEN_AFTER_S)
            self._later(reopened, {"type": "ticket_reopened", **ticket})
            self._later(reopened + 600, reply)
            solved = reopened + 3600 * self.returns.uniform(1, 8)
            self._later(solved, {"type": "ticket_solved", **ticket})
        self._later(solved + rng.uniform(*CLOSE_AFTER_S), {"type": "ticket_closed", **ticket})
        return {
            "type": "ticket_opened",
            **ticket,
            "customer_id": self._id("cust"),
            "team": rng.choice(p.teams),
            "priority": rng.choices(PRIORITIES, weights=PRIORITY_WEIGHTS)[0],
        }

    def _survey(self, now: float) -> dict[str, Any]:
        """One survey reply: mostly NPS, with the team and segments it is about; or a review or
        social mention (stream/tools/voices.py)."""
        rng = self.rng
        kind = rng.choices(SURVEY_KINDS, weights=SURVEY_WEIGHTS)[0]
        event: dict[str, Any] = {"type": kind, "response_id": self._id("resp"), **self._segments()}
        if kind == "review":
            return {**event, **voices.review(rng)}
        if kind == "mention":
            return {**event, **voices.mention(rng)}
        event["team"] = rng.choice(self.profile.teams)
        good = bad = False
        if kind == "emotion":
            event.update(voices.emotion_reply(rng))
        else:
            shift = self.profile.shift
            moved = shift.points if shift and shift.applies(kind, now, event) else 0.0
            score = event["score"] = self._score(kind, moved)
            good, bad = score >= SCALE_GOOD[kind], score <= SCALE_BAD[kind]
        if rng.random() < SURVEY_CUSTOMER_SHARE:
            event["customer_id"] = self._id("cust")
        tickets = self.counters.get("ticket", 0)
        if tickets and rng.random() < SURVEY_TICKET_SHARE:  # about a ticket seen earlier
            event["ticket_id"] = f"ticket-{self.run}-{rng.randint(1, tickets)}"
        if rng.random() < SURVEY_COMMENT_SHARE:  # its mood follows the score
            event["comment"] = voices.text(rng, voices.mood_of_answer(rng, good, bad))
        return event

    def _score(self, kind: str, moved: float = 0.0) -> int:
        """A score; `moved` NPS points move half as many percent from detractors to promoters
        (or back), passives unchanged."""
        rng, p = self.rng, self.profile
        if kind == "nps":
            roll = rng.random()
            promoters = min(max(p.promoter_share + moved / 200, 0.0), 1 - p.passive_share)
            if roll < promoters:
                return rng.randint(9, 10)
            if roll < promoters + p.passive_share:
                return rng.randint(7, 8)
            return rng.choices(range(7), weights=DETRACTOR_WEIGHTS)[0]
        if kind == "csat":
            return rng.choices(range(1, 6), weights=CSAT_WEIGHTS)[0]
        return rng.choices(range(1, 8), weights=CES_WEIGHTS)[0]


def generate(
    seed: int,
    start: datetime,
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    profile: Profile = DEFAULT_PROFILE,
) -> Iterator[dict[str, Any]]:
    """Events in emission order; event i occurs at start + i / rate seconds.

    Exactly one of `count` and `duration_s` (event-time seconds) bounds the run. A naive `start`
    is taken as UTC. Same arguments, same events. Bad arguments raise here, not at first use.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if count is not None and duration_s is None:
        total = count
    elif count is None and duration_s is not None:
        total = int(duration_s * rate)
    else:
        raise ValueError("give exactly one of count and duration_s")
    if total < 0:
        raise ValueError("count and duration_s must not be negative")
    origin = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return _emit(_Generator(seed, origin, profile), origin, rate, total)


def _emit(gen: _Generator, origin: datetime, rate: float, total: int) -> Iterator[dict[str, Any]]:
    for i in range(total):
        now = i / rate
        event = gen.next_event(now)
        yield {
            "event_id": gen.event_id(i),
            "type": event["type"],
            "occurred_at": _timestamp(origin + timedelta(seconds=now)),
            **event,
        }
