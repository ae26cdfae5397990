"""The topics a worker creates: the customers topic only when the customer KPIs are on."""

from __future__ import annotations

from pathlib import Path

from stream.config.settings import Settings
from stream.runtime.topics import all_topics


def test_the_customers_topic_and_its_dead_letters_come_with_the_customer_kpis(
    tmp_path: Path,
) -> None:
    on = Settings.load({"config": "none", "app_id": "shop"}, environ={})
    assert {"shop-orders-by-customer", "shop-orders-by-customer.dlq"} <= set(all_topics(on))
    assert {"cart-events", "cart-events.dlq", "tickets", "survey-replies"} <= set(all_topics(on))
    assert {"activity", "activity.dlq"} <= set(all_topics(on))
    config = tmp_path / "cxkpi.toml"
    config.write_text("[kpis.customers]\nenabled = false\n")
    off = Settings.load({"config": str(config), "app_id": "shop"}, environ={})
    assert not any("orders-by-customer" in topic for topic in all_topics(off))
    assert len(all_topics(off)) == 8
