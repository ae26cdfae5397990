"""Survey responses: NPS, CSAT and CES (docs/semantics.md, "Surveys").

Each response is its own sample in the bucket of its event time; the entity (the response id) is
kept only as long as a duplicate of it could still arrive inside grace.
"""

from __future__ import annotations

from typing import Any

from stream.contract.events import Event
from stream.kpis import RemembersNothing, segment_name, shared
from stream.state.facts import OVERALL, Contribution, Fact
from stream.state.segments import UNKNOWN, SegmentNames
from stream.state.windows import bucket_end

# fact = (t, 0, event_id, type, score, channel, region, team)
_T, _TYPE, _SCORE = 0, 3, 4
DIMENSIONS = ("channel", "region", "team")
#: The reply types these rules score. Any other type is a bug upstream (the decoder rejects it):
#: it raises rather than being counted as one of these.
TYPES = ("nps", "csat", "ces")


def _unknown(kind: str) -> ValueError:
    return ValueError(f"survey-replies rules have no KPI for type {kind!r} (known: {TYPES})")


def nps_category(score: int) -> str:
    """Promoters score 9-10, passives 7-8, detractors 0-6 (Bain)."""
    if score >= 9:
        return "promoters"
    return "passives" if score >= 7 else "detractors"


class SurveyRules(RemembersNothing):
    """KPI rules of the `survey-replies` topic."""

    topic = "survey-replies"
    dimensions = DIMENSIONS

    def __init__(self, *, step_ms: int, grace_ms: int) -> None:
        self.step_ms = step_ms
        self.grace_ms = grace_ms

    def fact(self, event: Event, names: SegmentNames) -> Fact:
        if event.type not in TYPES:
            raise _unknown(event.type)
        return (
            event.t,
            0,
            event.event_id,
            event.type,
            event.body["score"],
            *(segment_name(names, d, event.body) for d in DIMENSIONS),
        )

    def contributions(self, facts: list[Fact], stream_time: int) -> list[Contribution]:
        out: list[Contribution] = []
        for f in facts:
            t, kind, score = f[_T], f[_TYPE], f[_SCORE]
            segments = shared(
                (OVERALL, *((d, v or UNKNOWN) for d, v in zip(DIMENSIONS, f[5:8], strict=True)))
            )
            if kind == "nps":
                out.append((t, f"nps_{nps_category(score)}", segments, 1))
            elif kind == "csat":
                out.append((t, "csat_responses", segments, 1))
                if score >= 4:
                    out.append((t, "csat_satisfied", segments, 1))
            elif kind == "ces":
                out.append((t, "ces_responses", segments, 1))
                out.append((t, "ces_score_sum", segments, score))
                if score >= 5:
                    out.append((t, "ces_easy", segments, 1))
            else:
                raise _unknown(kind)
        return out

    def _forget_at(self, facts: list[Fact]) -> int:
        return bucket_end(max(f[_T] for f in facts), self.step_ms) + self.grace_ms + 1

    def next_due(self, facts: list[Fact], stream_time: int) -> int | None:
        return self._forget_at(facts) if facts else None

    def keep(self, facts: list[Fact], stream_time: int) -> list[Fact]:
        return facts if facts and stream_time < self._forget_at(facts) else []

    def decided(self, key: str, facts: list[Fact], kept: list[Fact]) -> list[Any]:
        """Nothing of a survey response is sent on to another partition."""
        return []
