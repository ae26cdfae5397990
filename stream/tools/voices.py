"""What the generator's customers say and feel: comments, reviews, mentions and emotion replies.

Texts come in English, Dutch, German and French (the scored languages), and some in Spanish and
Italian (unscored), and their polarity follows the answer they go with: a detractor's comment or
a one-star review is mostly negative, a promoter's mostly positive. The texts are short phrases
a shop's customers write; none is a real person's.
"""

from __future__ import annotations

import random
from typing import Any

from stream.kpis.surveys import NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS

#: Review platforms and social networks, which go in `channel` (spec/events.md).
PLATFORMS = ("trustpilot", "google", "app_store")
NETWORKS = ("x", "facebook", "instagram")
#: Of reviews: those that carry a star rating.
RATED_SHARE = 0.9
RATING_WEIGHTS = (8, 6, 10, 30, 46)  # 1..5 stars: about three quarters rated 4-5
#: Of mentions: positive, neutral, negative.
MENTION_MOODS = (0.35, 0.35, 0.3)
#: Emotion replies: how many words (1-3), and the share of mostly positive replies.
EMOTION_COUNTS = (0.5, 0.35, 0.15)
POSITIVE_REPLY_SHARE = 0.6
#: Languages of the texts and their shares; es and it are not scored.
LANGUAGE_WEIGHTS = {"en": 0.45, "nl": 0.2, "de": 0.17, "fr": 0.12, "es": 0.04, "it": 0.02}
TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "positive": (
            "Quick and friendly, thanks!",
            "The agent solved it in one go, great service.",
            "Love the new app, ordering is so easy :)",
            "Delivery was fast and the packaging was perfect.",
        ),
        "neutral": ("The parcel came on Tuesday.", "I ordered the blue one.", "ok"),
        "negative": (
            "Took far too long and nobody called back.",
            "Delivery was late again, very disappointing.",
            "The app keeps crashing at checkout!",
            "Not happy at all with the refund process.",
        ),
    },
    "nl": {
        "positive": (
            "Snel geleverd en heel vriendelijk geholpen, top!",
            "Geweldige service, echt een aanrader.",
            "Prima product, ik ben er heel blij mee.",
        ),
        "neutral": ("Het pakket kwam dinsdag.", "Ik heb de blauwe besteld."),
        "negative": (
            "Veel te lang gewacht en niemand belde terug.",
            "Slechte service, ik ben erg teleurgesteld.",
            "Het product was kapot en de retour duurde eeuwen.",
        ),
    },
    "de": {
        "positive": (
            "Schnelle Lieferung und sehr freundlicher Service, danke!",
            "Super Produkt, ich bin sehr zufrieden.",
            "Tolle Beratung, gerne wieder.",
        ),
        "neutral": ("Das Paket kam am Dienstag.", "Ich habe die blaue Variante bestellt."),
        "negative": (
            "Die Lieferung war viel zu spät, sehr enttäuschend.",
            "Schlechter Service, niemand hat zurückgerufen.",
            "Die App stürzt ständig ab, schrecklich.",
        ),
    },
    "fr": {
        "positive": (
            "Livraison rapide et service très aimable, merci !",
            "Excellent produit, je suis très satisfait.",
            "Super accueil, je recommande.",
        ),
        "neutral": ("Le colis est arrivé mardi.", "J'ai commandé le modèle bleu."),
        "negative": (
            "Livraison beaucoup trop lente, très déçu.",
            "Service horrible, personne ne m'a rappelé.",
            "Le produit est arrivé cassé, c'est inacceptable.",
        ),
    },
    "es": {
        "positive": ("Entrega rápida y muy amables, ¡gracias!",),
        "neutral": ("El paquete llegó el martes.",),
        "negative": ("La entrega llegó muy tarde, qué decepción.",),
    },
    "it": {
        "positive": ("Consegna veloce e personale gentilissimo, grazie!",),
        "neutral": ("Il pacco è arrivato martedì.",),
        "negative": ("Consegna in ritardo, molto deludente.",),
    },
}


def text(rng: random.Random, mood: str) -> str:
    """A short text of that mood in one of the languages."""
    languages = list(LANGUAGE_WEIGHTS)
    language = rng.choices(languages, weights=list(LANGUAGE_WEIGHTS.values()))[0]
    return rng.choice(TEXTS[language][mood])


def mood_of_answer(rng: random.Random, good: bool, bad: bool) -> str:
    """The mood of a comment that goes with an answer: mostly that of the answer."""
    if good:
        return rng.choices(("positive", "neutral", "negative"), weights=(0.75, 0.2, 0.05))[0]
    if bad:
        return rng.choices(("positive", "neutral", "negative"), weights=(0.05, 0.2, 0.75))[0]
    return rng.choices(("positive", "neutral", "negative"), weights=(0.3, 0.4, 0.3))[0]


def emotion_reply(rng: random.Random) -> dict[str, Any]:
    """The fields of an emotion reply: 1-3 distinct emotions, mostly of one side."""
    count = rng.choices((1, 2, 3), weights=EMOTION_COUNTS)[0]
    main, other = (
        (POSITIVE_EMOTIONS, NEGATIVE_EMOTIONS)
        if rng.random() < POSITIVE_REPLY_SHARE
        else (NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS)
    )
    words = rng.sample(main, count)
    if count > 1 and rng.random() < 0.2:  # now and then one of the other side
        words[-1] = rng.choice(other)
    return {"emotions": words}


def review(rng: random.Random) -> dict[str, Any]:
    """The fields of a review: its platform, mostly a rating, and a text that follows it."""
    fields: dict[str, Any] = {"channel": rng.choice(PLATFORMS)}
    rating = rng.choices(range(1, 6), weights=RATING_WEIGHTS)[0]
    if rng.random() < RATED_SHARE:
        fields["rating"] = rating
    fields["text"] = text(rng, mood_of_answer(rng, rating >= 4, rating <= 2))
    return fields


def mention(rng: random.Random) -> dict[str, Any]:
    """The fields of a social-media mention: its network and a text."""
    mood = rng.choices(("positive", "neutral", "negative"), weights=MENTION_MOODS)[0]
    return {"channel": rng.choice(NETWORKS), "text": text(rng, mood)}
