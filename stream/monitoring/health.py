"""Prometheus recording and alert rules of the processor's own health: partition coverage,
event rates, dead letters, consumer lag, stream time delay, the Redis snapshot's age
(stream/monitoring/rules.py adds them to the KPIs' rules)."""

from __future__ import annotations

from typing import Any

from stream.config.kpifile import Alerting
from stream.publish.lease import LEASE_INTERVALS, PublishedAt
from stream.state.windows import window_name

#: records a topic's partition count while each partition is owned by exactly one worker
COVERED = "topic:cxkpi_partitions:covered"
EVENTS_RATE = "topic_outcome:cxkpi_events:rate5m"
DEAD_LETTER_RATIO = "topic:cxkpi_events_dead_lettered:ratio_rate5m"
CONSUMER_LAG = "topic_partition:cxkpi_consumer_lag_records:max"
STREAM_DELAY = "topic:cxkpi_stream_time_delay_seconds:max"
#: when the merged snapshot in Redis was written, as each worker last wrote or saw it (lease.py)
SNAPSHOT_PUBLISHED = PublishedAt.NAME


def seconds_text(s: int) -> str:
    """A duration of the rules' `for` and texts: '5m', '1h', '0s'."""
    return window_name(s) if s else "0s"


def health_recording_rules() -> list[dict[str, str]]:
    """Partition coverage and the processor's own rates, lag and delay."""
    applied = 'cxkpi_events_total{outcome="applied"}'
    expected = "on (topic) max by (topic) (cxkpi_topic_partitions)"
    return [
        {
            "record": COVERED,
            "expr": (
                f"count by (topic) (count by (topic, partition) ({applied})) == {expected}\n"
                f"and on (topic)\ncount by (topic) ({applied}) == {expected}"
            ),
        },
        {"record": EVENTS_RATE, "expr": "sum by (topic, outcome) (rate(cxkpi_events_total[5m]))"},
        {
            "record": DEAD_LETTER_RATIO,
            "expr": (
                'sum by (topic) (rate(cxkpi_events_total{outcome="dead_lettered"}[5m]))\n'
                "/ (sum by (topic) (rate(cxkpi_events_total[5m])) > 0)"
            ),
        },
        {
            "record": CONSUMER_LAG,
            "expr": "max by (topic, partition) (cxkpi_consumer_lag_records)",
        },
        {  # no alert reads it: orders-by-customer lags the carts by step + grace by design
            "record": STREAM_DELAY,
            "expr": "time() - min by (topic) (cxkpi_stream_time_seconds)",
        },
    ]


def health_alerts(alerting: Alerting) -> list[dict[str, Any]]:
    """The processor's own health: coverage, silence, stalls, dead letters, a stale snapshot."""
    runbook = alerting.runbook_url

    def alert(name: str, expr: str, for_s: int, severity: str, summary: str, text: str) -> dict:
        return {
            "alert": name,
            "expr": expr,
            "for": seconds_text(for_s),
            "labels": {"severity": severity, "service": "cxkpi"},
            "annotations": {
                "summary": summary,
                "description": text,
                "runbook_url": f"{runbook}#{name.lower()}",
            },
        }

    ratio = f"{alerting.dead_letter_ratio:g}"
    min_rate = f"{alerting.dead_letter_min_events / 300:g}"
    return [
        alert(
            "CxkpiNoWorker",
            "absent(cxkpi_topic_partitions)",
            alerting.uncovered_for_s,
            "critical",
            "No cxkpi worker is scraped",
            "Prometheus scrapes no cxkpi worker, so no KPI is published.",
        ),
        alert(
            "CxkpiPartitionsNotCovered",
            f"max by (topic) (cxkpi_topic_partitions) unless on (topic) {COVERED}",
            alerting.uncovered_for_s,
            "critical",
            "KPIs of {{ $labels.topic }} are not published",
            "The partitions of {{ $labels.topic }} are not each owned by exactly one scraped "
            f"worker (a worker is down, recovering or rebalancing) for "
            f"{seconds_text(alerting.uncovered_for_s)}, so its KPIs are withheld.",
        ),
        alert(
            "CxkpiNoEventsApplied",
            f'sum by (topic) ({EVENTS_RATE}{{outcome="applied"}}) == 0',
            alerting.silent_for_s,
            "warning",
            "No {{ $labels.topic }} event applied",
            "No event of {{ $labels.topic }} has been applied for "
            f"{seconds_text(alerting.silent_for_s)}: producers stopped, or every event is late, "
            "a duplicate or dead-lettered.",
        ),
        alert(
            "CxkpiConsumerStalled",
            f"{CONSUMER_LAG} > 0\n"
            f"and on (topic, partition) sum by (topic, partition) "
            f"(rate(cxkpi_events_total[5m])) == 0",
            alerting.stalled_for_s,
            "critical",
            "Consumer stalled on {{ $labels.topic }}[{{ $labels.partition }}]",
            "{{ $value }} records wait on {{ $labels.topic }}[{{ $labels.partition }}] and none "
            f"was processed for {seconds_text(alerting.stalled_for_s)}.",
        ),
        alert(
            "CxkpiDeadLettersHigh",
            f"{DEAD_LETTER_RATIO} > {ratio}\n"
            f"and on (topic) sum by (topic) (rate(cxkpi_events_total[5m])) >= {min_rate}",
            300,
            "warning",
            "{{ $value | humanizePercentage }} of {{ $labels.topic }} records dead-lettered",
            f"More than {alerting.dead_letter_ratio:.2%} of {{{{ $labels.topic }}}} records "
            f"over 5m went to {{{{ $labels.topic }}}}.dlq (with at least "
            f"{alerting.dead_letter_min_events} records in 5m). Read the error headers there.",
        ),
        alert(  # its own threshold is a duration: no `for` on top of it
            "CxkpiSnapshotStale",
            f"time() - max({SNAPSHOT_PUBLISHED}) > {alerting.snapshot_stale_after_s}",
            0,
            "critical",
            "The merged snapshot in Redis was written {{ $value | humanizeDuration }} ago",
            "No worker has written or seen a merged snapshot in Redis for more than "
            f"{seconds_text(alerting.snapshot_stale_after_s)}, so readers of "
            "<app_id>:snapshot get old values. When its writer dies another worker takes over "
            f"within {LEASE_INTERVALS} publish intervals: Redis is unreachable or too slow for "
            "the workers.",
        ),
    ]
