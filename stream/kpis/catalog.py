"""The published KPIs: which bucket measures make each one, and over which segment dimensions."""

from __future__ import annotations

from dataclasses import dataclass

from stream.kpis.customers import (
    ACTIVE,
    AMOUNT,
    ANONYMOUS,
    CUSTOMERS_TOPIC,
    ORDERS,
    PREVIOUS,
    PRICED,
    REPEAT,
    RETAINED,
)
from stream.kpis.kinds import (
    Adoption,
    AgeHistogram,
    Average,
    Count,
    Customers,
    Duration,
    Fraction,
    Kind,
    LiveGauge,
    Mean,
    Money,
    NetScore,
    Sentiment,
    Share,
    Shares,
    Stickiness,
)
from stream.kpis.surveys import EMOTIONS

CART_DIMENSIONS = ("channel", "region")
TICKET_DIMENSIONS = ("channel", "region", "team", "priority")
SURVEY_DIMENSIONS = ("channel", "region", "team")
#: A text's sentiment also per source (comment, review, mention) and language
#: (stream/contract/voice.py).
VOICE_DIMENSIONS = ("source", "language", *SURVEY_DIMENSIONS)
ENGAGEMENT_DIMENSIONS = ("channel", "region")
#: Stickiness's parts: (component, the measure its window's active users are read as, window ms)
STICKY_DAILY = ("daily", "stickiness_daily", 86_400_000)
STICKY_MONTHLY = ("monthly", "stickiness_monthly", 30 * 86_400_000)


@dataclass(frozen=True)
class Kpi:
    """One published KPI.

    `kind` decides how its components become a value, its JSON and its Prometheus families
    (stream/kpis/kinds/): Share, Fraction, NetScore, Mean, Sentiment, Duration, Money, LiveGauge,
    AgeHistogram, Customers, Count, Adoption, Average. `parts` maps each published component to
    the bucket measure it is summed from.
    """

    name: str
    kind: Kind
    topic: str
    dimensions: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]
    #: the direction in which it gets worse ("down" or "up"): a change alert's default
    worse: str = "down"

    @property
    def is_live(self) -> bool:
        """A value of now (published without a window), not of a rolling window."""
        return self.kind.live

    @property
    def value(self) -> str:
        """The JSON key of its headline value."""
        return self.kind.key

    @property
    def title(self) -> str:
        """The name people read: 'Cart abandonment', and acronyms in capitals ('CSAT')."""
        return ACRONYMS.get(self.name) or self.name.replace("_", " ").capitalize()


#: KPIs whose name is an acronym, written as such in titles
ACRONYMS = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}


CATALOG: tuple[Kpi, ...] = (
    Kpi(
        "cart_abandonment",
        Share(),
        "cart-events",
        CART_DIMENSIONS,
        (("abandoned", "cart_abandoned"), ("converted", "cart_converted")),
        worse="up",
    ),
    Kpi(
        "checkout_abandonment",
        Share(),
        "cart-events",
        CART_DIMENSIONS,
        (("abandoned", "checkout_abandoned"), ("converted", "checkout_converted")),
        worse="up",
    ),
    Kpi(
        "conversion",
        Fraction(),
        "cart-events",
        CART_DIMENSIONS,
        (("converted", "cart_converted"), ("created", "carts_created")),
    ),
    Kpi(
        "average_order_value",
        Money(),
        "cart-events",
        CART_DIMENSIONS,
        (("orders", "priced_orders"), ("amount", "order_amount_micros")),
    ),
    Kpi(
        "upsell",
        Fraction(),
        "cart-events",
        CART_DIMENSIONS,
        (("upsold", "upsell_orders"), ("orders", "orders")),
    ),
    Kpi(
        "resolution_time",
        Duration(),
        "tickets",
        TICKET_DIMENSIONS,
        (("samples", "resolution"),),
        worse="up",
    ),
    Kpi(
        "first_response_time",
        Duration(),
        "tickets",
        TICKET_DIMENSIONS,
        (("samples", "first_response"),),
        worse="up",
    ),
    Kpi(
        "first_contact_resolution",
        Fraction(),
        "tickets",
        TICKET_DIMENSIONS,
        (("first_contact", "first_contact_solves"), ("solves", "ticket_solves")),
    ),
    Kpi(
        "reopen_rate",
        Fraction(),
        "tickets",
        TICKET_DIMENSIONS,
        (("reopens", "ticket_reopens"), ("solves", "ticket_solves")),
        worse="up",
    ),
    Kpi(
        "open_backlog",
        LiveGauge(),
        "tickets",
        TICKET_DIMENSIONS,
        (("tickets", "open_tickets"),),
    ),
    Kpi(
        "backlog_age",
        AgeHistogram(),
        "tickets",
        ("team", "priority"),
        (("tickets", "backlog_age"), ("oldest", "backlog_opened")),
    ),
    Kpi(
        "nps",
        NetScore(),
        "survey-replies",
        SURVEY_DIMENSIONS,
        (
            ("promoters", "nps_promoters"),
            ("passives", "nps_passives"),
            ("detractors", "nps_detractors"),
        ),
    ),
    Kpi(
        "sentiment",
        Sentiment(),
        "survey-replies",
        VOICE_DIMENSIONS,
        (
            ("positive", "sentiment_positive"),
            ("neutral", "sentiment_neutral"),
            ("negative", "sentiment_negative"),
            ("unscored", "sentiment_unscored"),
            ("score_sum", "sentiment_score_sum"),
        ),
    ),
    Kpi(
        "net_emotion",
        NetScore(total="replies"),
        "survey-replies",
        SURVEY_DIMENSIONS,
        (
            ("positive", "emotion_positive"),
            ("mixed", "emotion_mixed"),
            ("negative", "emotion_negative"),
        ),
    ),
    Kpi(
        "emotions",
        Shares(label="emotion"),
        "survey-replies",
        SURVEY_DIMENSIONS,
        (("replies", "emotion_replies"), *((e, f"emotion_{e}") for e in EMOTIONS)),
    ),
    Kpi(
        "review_rating",
        Mean(share_key="good_ratio", scale="1-5", good="rated 4-5"),
        "survey-replies",
        ("channel",),
        (
            ("reviews", "review_count"),
            ("rating_sum", "review_rating_sum"),
            ("good", "review_good"),
            ("rating_sum_of_squares", "review_rating_squares"),
        ),
    ),
    Kpi(
        "csat",
        Fraction(key="score", scale=100.0),
        "survey-replies",
        SURVEY_DIMENSIONS,
        (("satisfied", "csat_satisfied"), ("responses", "csat_responses")),
    ),
    Kpi(
        "ces",
        Mean(),
        "survey-replies",
        SURVEY_DIMENSIONS,
        (
            ("responses", "ces_responses"),
            ("score_sum", "ces_score_sum"),
            ("easy", "ces_easy"),
            ("score_sum_of_squares", "ces_score_squares"),
        ),
    ),
    Kpi(
        "active_users",
        Count(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        (("users", "active_users"),),
    ),
    Kpi("new_users", Count(), "activity", ENGAGEMENT_DIMENSIONS, (("users", "new_users"),)),
    Kpi(
        "session_duration",
        Duration(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        (("samples", "session_duration"),),
    ),
    Kpi(
        "bounce_rate",
        Fraction(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        (("bounced", "session_bounces"), ("sessions", "sessions")),
        worse="up",
    ),
    Kpi(
        "pages_per_session",
        Average(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        (("pages", "session_pages"), ("sessions", "sessions")),
    ),
    Kpi(
        "time_to_value",
        Duration(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        (("samples", "time_to_value"),),
        worse="up",
    ),
    Kpi(
        "activation_rate",
        Fraction(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        (("activated", "activation_activated"), ("signups", "activation_signups")),
    ),
    Kpi(
        "feature_adoption",
        Adoption(),
        "activity",
        ("feature",),
        (("users", "feature_users"), ("active", "active_users")),
    ),
    Kpi(
        "stickiness",
        Stickiness(),
        "activity",
        ENGAGEMENT_DIMENSIONS,
        ((STICKY_DAILY[0], STICKY_DAILY[1]), (STICKY_MONTHLY[0], STICKY_MONTHLY[1])),
    ),
    Kpi(
        "customers",
        Customers(),
        CUSTOMERS_TOPIC,
        (),
        (
            ("active", ACTIVE),
            ("previous", PREVIOUS),
            ("retained", RETAINED),
            ("repeat", REPEAT),
            ("orders", ORDERS),
            ("anonymous_orders", ANONYMOUS),
            ("priced_orders", PRICED),
            ("amount", AMOUNT),
        ),
    ),
)
WINDOWED = tuple(k for k in CATALOG if not k.is_live)
#: Read from the 24 h and 30 d windows, not from live gauges (stream/publish/document.py).
STICKINESS = next(k for k in CATALOG if isinstance(k.kind, Stickiness))
LIVE = tuple(k for k in CATALOG if k.is_live)
