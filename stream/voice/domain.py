"""Customer-experience words: polar in feedback about a service, missing (or of the wrong sign)
in general-language lexicons, which describe books and news ("slow", "late", "expensive" and
"joke" are not negative there; VADER has no "fast", Pattern's lexicons list adjectives only).

One row a concept: its valence on VADER's scale, the same in every language, then its forms in
English, Dutch, German and French. Only the forms listed are matched (no inflection is guessed):
a reader sees exactly which words they are. Written for this project after the first
measurement on bench/sentiment/labelled; bench/sentiment/heldout, written before them, checks
that they help on texts they were not written against. Where VADER rates the English word, its
valence is the concept's (in brackets: ours where VADER has none).
"""

from __future__ import annotations

#: (valence, English, Dutch, German, French); "|" separates the languages' forms.
CONCEPTS: tuple[tuple[float, str], ...] = (
    # speed and punctuality
    (1.5, "fast quick quickly speedy prompt promptly | snel snelle vlot vlug | schnell schnelle "
          "schneller zügig prompt flott | rapide rapides rapidement vite"),  # (ours)
    (-1.5, "slow slowly sluggish | traag trage langzaam | langsam langsame schleppend | lent "
           "lente lents lentement"),  # (ours)
    (-1.3, "delay delays delayed overdue | vertraging vertraagd | verspätet verspätung "
           "verzögerung verzögert | retard retardé retardée"),  # delay
    # price
    (-1.5, "expensive overpriced pricey | duur dure overprijsd | teuer teure überteuert | cher "
           "chère chers chères"),  # (ours)
    (-1.5, "shoddy flimsy | prullerig | billig billige billiges billigen minderwertig | "
           "camelote"),  # (ours): "billig" is pejorative, the lexicon has it positive
    # things that break
    (-2.1, "broken faulty defective | kapot defect defecte | kaputt defekt defekte | cassé "
           "cassée cassés cassées défectueux défectueuse"),  # broken
    (-1.9, "damaged | beschadigd beschadigde | beschädigt beschädigte beschädigten | abîmé "
           "abîmée abîmés endommagé endommagée"),  # damaged
    (-1.7, "crash crashes crashed crashing buggy | crasht crashen vastgelopen | stürzt "
           "abstürzen absturz fehlerhaft | plante plantage bug bugs"),  # crash
    (-1.4, "mistake error errors | fout fouten verkeerd verkeerde | fehler falsch falsche "
           "falschen | erreur erreurs faux fausse"),  # mistake
    (-1.2, "missing | ontbreekt ontbreken ontbrak | fehlt fehlen fehlende fehlendes | manquant "
           "manquante manquants manquent"),  # missing
    (-1.7, "problem problems issue issues | probleem problemen | problem probleme ärger | "
           "problème problèmes souci soucis"),  # problem
    (1.1, "solved resolved fixed | opgelost verholpen | gelöst behoben | résolu résolue réglé "
          "réglée"),  # solved
    # people
    (-2.0, "rude impolite | onbeleefd onbeschoft onvriendelijk | unhöflich unfreundlich "
           "unverschämt | impoli impolie grossier grossière désagréable"),  # rude
    (2.2, "friendly | vriendelijk vriendelijke aardig aardige | freundlich freundliche "
          "nett nette | aimable aimables sympa sympathique gentil gentille"),  # friendly
    (1.8, "helpful | behulpzaam behulpzame | hilfsbereit hilfreich hilfreiche | serviable "
          "serviables utile utiles"),  # helpful
    (1.5, "professional competent | professioneel vakkundig deskundig | professionell "
          "kompetent kompetente | professionnel professionnelle compétent compétente"),  # (ours)
    (-1.3, "ignored ignores ignoring | negeert genegeerd | ignoriert ignorieren | ignore "
           "ignoré ignorés ignorent"),  # ignored
    (-1.6, "lied lies liar | gelogen liegen | gelogen lügen | menti mensonge mensonges"),  # lied
    (-2.7, "scam scammers scammed fraud | oplichters oplichting opgelicht | betrug betrüger "
           "abzocke abgezockt betrogen | arnaque arnaqueurs arnaqué arnaquée escrocs"),  # scam
    # how the customer feels
    (-1.9, "frustrating frustrated annoying | frustrerend gefrustreerd irritant vervelend "
           "vervelende | frustrierend frustriert ärgerlich nervig | frustrant frustrante "
           "agaçant énervant"),  # frustrating
    (-2.2, "disappointing disappointed | teleurstellend teleurgesteld | enttäuschend "
           "enttäuscht | décevant décevante déçu déçue"),  # disappointing
    (-2.3, "angry furious | boos woedend | wütend verärgert | furieux furieuse énervé"),  # angry
    (-1.8, "regret | spijt | bereue bereuen | regrette regretter"),  # regret
    (-1.8, "| | | marre"),  # VADER's "fed up" ("j'en ai marre")
    (-1.4, "unfortunately sadly | helaas jammer | leider schade | malheureusement dommage "
           "hélas"),  # unfortunately
    (-2.0, "unacceptable outrageous | onacceptabel schandalig | inakzeptabel frechheit "
           "skandal | inadmissible inacceptable honteux scandaleux"),  # unacceptable
    (-1.8, "useless worthless | nutteloos waardeloos waardeloze | nutzlos wertlos | inutile "
           "nul nulle"),  # useless
    (-1.8, "waste | zonde verspilling | verschwendung geldverschwendung | gaspillage"),  # waste
    (-1.5, "joke | lachertje aanfluiting | witz | blague"),  # (ours): "is a joke"
    (-2.2, "chaos chaotic | chaos chaotisch chaotische | chaos chaotisch chaotische | chaos "
           "chaotique"),  # chaotic
    (-1.9, "dirty filthy | vies vieze smerig | schmutzig dreckig | sale sales crasseux"),  # dirty
    # evaluative words a lexicon lacks (superlatives of "good" and "bad" are other words)
    (3.2, "best | beste best | beste bester besten bestes | meilleur meilleure meilleurs "
          "meilleures"),  # best
    (-3.1, "worst | slechtste | schlechteste schlechtesten schlimmste | pire pires"),  # worst
    (3.1, "great | geweldig geweldige | großartig großartige | génial géniale formidable"),
    (-3.1, "disaster | ramp | katastrophe | catastrophe"),  # disaster
    (2.3, "delighted thrilled | dolblij | begeistert | ravi ravie ravis enchanté "
          "enchantée"),  # delighted
    (2.0, "bravo kudos | bravo | bravo | bravo"),  # (ours)
    # what the customer recommends, thanks and praises
    (1.5, "recommend recommended | aanrader aanraden aanbevelen | empfehlen empfehle "
          "empfehlenswert | recommande recommander recommandé recommanderai"),  # recommend
    (1.9, "thanks thank | bedankt dank dankjewel | danke dank | merci remercie"),  # thanks
    (1.5, "smooth smoothly seamless | soepel vlekkeloos probleemloos | reibungslos problemlos "
          "unkompliziert einwandfrei | fluide"),  # (ours)
    (1.5, "reliable | betrouwbaar betrouwbare | zuverlässig zuverlässige | fiable "
          "fiables"),  # (ours)
    (1.9, "easy | makkelijk gemakkelijk eenvoudig | leicht | facile "
          "facilement"),  # easy
    (0.9, "worth | waard | wert | vaut"),  # worth
    (1.7, "clean spotless tidy | schoon netjes | sauber | propre propres"),  # clean
    (2.1, "impressed impressive | indrukwekkend | beeindruckt beeindruckend | impressionné "
          "impressionnée impressionnant"),  # impressed
    (2.7, "delicious tasty | lekker heerlijk | lecker köstlich | délicieux délicieuse"),
)  # fmt: skip

LANGUAGES = ("en", "nl", "de", "fr")


def words(language: str) -> dict[str, float]:
    """The concepts' forms in one language, each with its concept's valence."""
    column = LANGUAGES.index(language)
    out: dict[str, float] = {}
    for valence, forms in CONCEPTS:
        for word in forms.split("|")[column].split():
            out[word] = valence
    return out
