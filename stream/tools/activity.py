"""Synthetic product activity for the generator: users with a daily and weekly rhythm, returning
and lapsing users, sign-ups that activate or not, bouncing and long sessions, a feature list.

It draws from a random stream of its own (`random.Random(f"{seed}|activity")`), so the carts,
tickets and survey replies a seed gives are the same ones, in the same order, as before activity
existed: only their slots move (stream/tools/generate.py gives activity a share of the slots).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The product's features (feature_used carries one; a bounded segment).
FEATURES = ("search", "export", "share", "reports", "alerts", "wishlist", "compare", "reorder")
#: How often each is used, relative to the others: a few core features, a long tail.
FEATURE_WEIGHTS = (30, 12, 10, 8, 5, 4, 3, 2)
NEW_USER_SHARE = 0.12  # of sessions: a user seen for the first time, who signs up
ACTIVATES_SHARE = 0.55  # of sign-ups: reach value at all (some after the 7 d period)
VALUE_MEDIAN_S = 12 * 3600  # log-normal time to value of those who reach it: a third within
VALUE_SIGMA = 1.8  # three hours, one in eight after the 7 d activation period
LAPSE_SHARE = 0.04  # after a session, the user stops coming (for weeks, or for good)
COME_BACK_SHARE = 0.03  # of sessions: a lapsed user returns
BOUNCE_SHARE = 0.3  # sessions of one page view and nothing else
LONG_SHARE = 0.08  # long sessions: many pages over up to two hours
ENDED_SHARE = 0.65  # sessions that send session_ended (the rest time out)
LOOSE_FEATURE_SHARE = 0.05  # feature uses outside any session (a background action)


def rhythm(t_s: float) -> float:
    """How busy the product is at epoch second t relative to its mean: a daily wave peaking at
    14:00 UTC and quiet weekends."""
    hour = (t_s % 86400) / 3600
    day = int(t_s // 86400 + 3) % 7  # 0 = Monday (the epoch was a Thursday)
    daily = 1 + 0.7 * math.cos(2 * math.pi * (hour - 14) / 24)
    return daily * (0.6 if day >= 5 else 1.16)


@dataclass
class _User:
    user_id: str
    channel: str
    region: str


class Activity:
    """The users of one generator run and the sessions they start."""

    def __init__(
        self,
        seed: int,
        channels: tuple[str, ...],
        regions: tuple[str, ...],
        new_id: Callable[[str], str],
    ) -> None:
        self.rng = random.Random(f"{seed}|activity")
        self.channels, self.regions = channels, regions
        self.new_id = new_id
        self.active: list[_User] = []  # who comes back
        self.lapsed: list[_User] = []  # who stopped coming, for now

    def starts(self, share: float, t_s: float) -> bool:
        """Whether this slot starts a session: `share` of them on average, with the rhythm."""
        return share > 0 and self.rng.random() < share * rhythm(t_s)

    def session(self, now: float, later: Callable[[float, dict[str, Any]], None]) -> dict[str, Any]:
        """A user's session from `now`: its first event (a new user's sign-up, or the session's
        start) returned, the others scheduled with `later`."""
        rng = self.rng
        user, signup = self._user(now, later)
        if rng.random() < LOOSE_FEATURE_SHARE:
            feature = rng.choices(FEATURES, weights=FEATURE_WEIGHTS)[0]
            later(
                now + rng.uniform(1, 60),
                {"type": "feature_used", **self._base(user), "feature": feature},
            )
        session = {**self._base(user), "session_id": self.new_id("sess")}
        events = self._events(session)
        first = signup or events.pop(0)
        t = now + (rng.uniform(1, 5) if signup else 0)
        for event in events:
            t += self._gap(len(events))
            later(t, event)
        if rng.random() < LAPSE_SHARE:
            self.active.remove(user)
            self.lapsed.append(user)
        return first

    def _user(
        self, now: float, later: Callable[[float, dict[str, Any]], None]
    ) -> tuple[_User, dict[str, Any] | None]:
        """A returning, lapsed or new user; a new one signs up (its sign-up is returned) and
        may reach value later."""
        rng = self.rng
        if self.lapsed and rng.random() < COME_BACK_SHARE:
            user = self.lapsed.pop(rng.randrange(len(self.lapsed)))
            self.active.append(user)
            return user, None
        if self.active and rng.random() >= NEW_USER_SHARE:
            return rng.choice(self.active), None
        user = _User(self.new_id("user"), rng.choice(self.channels), rng.choice(self.regions))
        self.active.append(user)
        if rng.random() < ACTIVATES_SHARE:
            reached = now + rng.lognormvariate(math.log(VALUE_MEDIAN_S), VALUE_SIGMA)
            later(
                reached, {"type": "value_reached", **self._base(user), "milestone": "first order"}
            )
        return user, {"type": "signed_up", **self._base(user)}

    def _base(self, user: _User) -> dict[str, Any]:
        return {"user_id": user.user_id, "channel": user.channel, "region": user.region}

    def _events(self, session: dict[str, Any]) -> list[dict[str, Any]]:
        """A session's events in order: started, page views and feature uses, maybe ended."""
        rng = self.rng
        out = [{"type": "session_started", **session}]
        roll = rng.random()
        if roll < BOUNCE_SHARE:
            pages = 1
        elif roll < BOUNCE_SHARE + LONG_SHARE:
            pages = rng.randint(40, 80)
        else:
            pages = rng.randint(2, 15)
        for _ in range(pages):
            out.append({"type": "page_viewed", **session, "page": f"/p/{rng.randint(1, 5000)}"})
            if pages > 1 and rng.random() < 0.2:
                feature = rng.choices(FEATURES, weights=FEATURE_WEIGHTS)[0]
                out.append({"type": "feature_used", **session, "feature": feature})
        if rng.random() < ENDED_SHARE:
            out.append({"type": "session_ended", **session})
        return out

    def _gap(self, events: int) -> float:
        """Seconds between two events of a session: long sessions last up to two hours."""
        return self.rng.uniform(5, 7200 / events if events > 40 else 120)
