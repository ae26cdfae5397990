"""Creating the source and dead-letter topics with the configured partition count, idempotently.

Faust refuses to start when a source topic has another partition count than its tables, and some
brokers auto-create topics with their own default; so topics are created explicitly, and an
existing topic with the wrong count is reported as a configuration error.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from stream.config import ConfigError
from stream.config.settings import Settings
from stream.contract.schemas import SOURCE_TOPICS, dead_letter_topic
from stream.runtime.connection import client_options
from stream.runtime.repartition import customers_topic


class BrokerUnreachable(ConfigError):
    """The broker did not answer (it may be down or starting, or the address is wrong)."""


def all_topics(settings: Settings) -> list[str]:
    """The source topics, the customers topic when the customer KPIs are on, and the
    dead-letter topic of each."""
    read = [*SOURCE_TOPICS]
    if settings.enabled("customers"):
        read.append(customers_topic(settings.app_id))
    return [t for topic in read for t in (topic, dead_letter_topic(topic))]


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """Create missing topics; returns topic -> 'created' or 'exists'. Raises ConfigError
    (BrokerUnreachable when the broker does not answer within timeout_s)."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        return await asyncio.wait_for(_ensure(admin, settings), timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnreachable(
            f"cannot reach the broker at {settings.broker} ({type(exc).__name__}: {exc}); "
            "check --broker / CXKPI_BROKER and that the broker is running"
        ) from None
    finally:
        await admin.close()


async def _ensure(admin: AIOKafkaAdminClient, settings: Settings) -> dict[str, str]:
    existing = set(await admin.list_topics())
    wanted = all_topics(settings)
    missing = [t for t in wanted if t not in existing]
    if missing:
        await admin.create_topics([NewTopic(t, settings.partitions, 1) for t in missing])
    present = [t for t in wanted if t in existing]
    if present:
        for meta in await admin.describe_topics(present):
            count = len(meta["partitions"])
            if count != settings.partitions:
                raise ConfigError(
                    f"topic {meta['topic']} has {count} partitions but partitions is "
                    f"{settings.partitions}; set --partitions {count} or recreate the topic"
                )
    return {t: "created" if t in missing else "exists" for t in wanted}
