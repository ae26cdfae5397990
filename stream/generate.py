"""Realistic synthetic events for all three topics, deterministic for a given seed and start.

Event i occurs at start + i/rate. At each slot the generator emits the next due event of an entity
already under way (a cart's next item, a ticket's reply or solve), or starts a new cart, ticket or
survey response, so many entities interleave as they do in production.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stream.schemas import KEY_FIELD, TOPIC_OF_TYPE


@dataclass(frozen=True)
class Profile:
    """The shape of the generated traffic."""

    abandon_share: float = 0.7  # cart sessions with items that end without an order
    checkout_share_of_abandoned: float = 0.3
    resolution_median_s: float = 4 * 3600  # log-normal ticket resolution time
    resolution_sigma: float = 0.8
    first_reply_median_s: float = 20 * 60
    promoter_share: float = 0.5  # with 0.3 passives and 0.2 detractors: NPS about +30
    passive_share: float = 0.3
    cart_share: float = 0.5  # of new entities started
    ticket_share: float = 0.3
    channels: tuple[str, ...] = ("web", "app", "store")
    regions: tuple[str, ...] = ("eu", "us", "apac")
    teams: tuple[str, ...] = ("billing", "shipping", "returns", "tech")


def topic_of(event: dict[str, Any]) -> str:
    return TOPIC_OF_TYPE[event["type"]]


def record_key(event: dict[str, Any]) -> str:
    return str(event[KEY_FIELD[topic_of(event)]])


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Generator:
    def __init__(self, seed: int, profile: Profile) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.profile = profile
        self.pending: list[tuple[float, int, dict[str, Any]]] = []  # (due s, seq, event)
        self.seq = 0
        self.ids = 0

    def _id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}-{self.seed}-{self.ids}"

    def _later(self, due: float, event: dict[str, Any]) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (due, self.seq, event))

    def start_entity(self, now: float) -> None:
        """Schedule a new cart, ticket or survey response; its events come out of `pending`."""
        roll = self.rng.random()
        p = self.profile
        if roll < p.cart_share:
            self._cart(now)
        elif roll < p.cart_share + p.ticket_share:
            self._ticket(now)
        else:
            self._survey(now)

    def _segments(self) -> dict[str, str]:
        rng, p = self.rng, self.profile
        return {"channel": rng.choice(p.channels), "region": rng.choice(p.regions)}

    def _cart(self, now: float) -> None:
        rng, p = self.rng, self.profile
        cart = {"cart_id": self._id("cart"), **self._segments()}
        customer = self._id("cust")
        t = now
        if rng.random() < 0.7:
            self._later(t, {"type": "cart_created", **cart, "customer_id": customer})
        lines = []
        for _ in range(rng.randint(1, 5)):
            t += rng.uniform(5, 90)
            line = {
                "sku": f"sku-{rng.randint(1, 500)}",
                "quantity": rng.randint(1, 3),
                "unit_price": round(rng.uniform(3, 120), 2),
                "upsell": rng.random() < 0.15,
            }
            lines.append(line)
            self._later(t, {"type": "item_added", **cart, **line})
            if rng.random() < 0.1:
                t += rng.uniform(5, 60)
                self._later(t, {"type": "item_removed", **cart, "sku": line["sku"], "quantity": 1})
        converts = rng.random() >= p.abandon_share
        if converts or rng.random() < p.checkout_share_of_abandoned:
            t += rng.uniform(10, 120)
            self._later(t, {"type": "checkout_started", **cart})
        if converts:
            t += rng.uniform(10, 180)
            amount = round(sum(x["quantity"] * x["unit_price"] for x in lines), 2)
            self._later(
                t,
                {
                    "type": "order_placed",
                    **cart,
                    "order_id": self._id("order"),
                    "amount": amount,
                    "currency": rng.choice(("EUR", "USD")),
                },
            )

    def _ticket(self, now: float) -> None:
        rng, p = self.rng, self.profile
        ticket = {"ticket_id": self._id("ticket"), **self._segments()}
        self._later(
            now,
            {
                "type": "ticket_opened",
                **ticket,
                "customer_id": self._id("cust"),
                "team": rng.choice(p.teams),
                "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
            },
        )
        first_reply = rng.lognormvariate(math.log(p.first_reply_median_s), 0.7)
        resolution = rng.lognormvariate(math.log(p.resolution_median_s), p.resolution_sigma)
        resolution = max(resolution, first_reply + 1)
        agent = self._id("agent")
        if rng.random() < 0.2:
            self._later(
                now + first_reply / 2,
                {"type": "agent_replied", **ticket, "agent_id": agent, "public": False},
            )
        self._later(
            now + first_reply,
            {"type": "agent_replied", **ticket, "agent_id": agent, "public": True},
        )
        if rng.random() < 0.4:
            self._later(
                now + (first_reply + resolution) / 2, {"type": "customer_replied", **ticket}
            )
        solved = now + resolution
        self._later(solved, {"type": "ticket_solved", **ticket})
        if rng.random() < 0.1:
            self._later(solved + rng.uniform(60, 600), {"type": "ticket_reopened", **ticket})
            solved += rng.uniform(600, 1200)
            self._later(solved, {"type": "ticket_solved", **ticket})
        self._later(solved + rng.uniform(600, 3600), {"type": "ticket_closed", **ticket})

    def _survey(self, now: float) -> None:
        rng, p = self.rng, self.profile
        kind = rng.choices(("nps", "csat", "ces"), weights=(0.6, 0.25, 0.15))[0]
        if kind == "nps":
            roll = rng.random()
            if roll < p.promoter_share:
                score = rng.randint(9, 10)
            elif roll < p.promoter_share + p.passive_share:
                score = rng.randint(7, 8)
            else:
                score = rng.randint(0, 6)
        else:
            score = rng.randint(1, 5 if kind == "csat" else 7)
        event = {
            "type": kind,
            "response_id": self._id("resp"),
            "score": score,
            **self._segments(),
            "team": rng.choice(p.teams),
        }
        if rng.random() < 0.5:
            event["customer_id"] = self._id("cust")
        if rng.random() < 0.3:
            event["comment"] = rng.choice(("great help", "too slow", "ok", "thanks!"))
        self._later(now, event)


def generate(
    seed: int,
    start: datetime,
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    profile: Profile | None = None,
) -> Iterator[dict[str, Any]]:
    """Events in emission order; event i occurs at start + i / rate seconds."""
    if (count is None) == (duration_s is None):
        raise ValueError("give exactly one of count and duration_s")
    total = count if count is not None else int((duration_s or 0) * rate)
    gen = _Generator(seed, profile or Profile())
    for i in range(total):
        now = i / rate
        if not gen.pending or gen.pending[0][0] > now:
            gen.start_entity(now)
        _, _, event = heapq.heappop(gen.pending)
        yield {
            "event_id": gen._id("evt"),
            "occurred_at": _timestamp(start + timedelta(seconds=now)),
            **event,
        }
