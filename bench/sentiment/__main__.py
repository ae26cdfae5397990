"""`python -m bench.sentiment`: accuracy of the sentiment scorer per language on the labelled
texts (with the confusion counts), on the held-out texts and on texts in other languages, and its
cost: microseconds per text, detection included, and the worst case over hostile texts.

Targets (kpis.md, issue 22) are printed beside their figures, PASS or FAIL. As in the rest of
bench/, a missed target is a finding, not a failure of the run: the exit code is 0 unless
`--strict` is given (then 1 when any target fails).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bench.report import machine
from bench.sentiment import cost, labels
from stream.voice import Polarity, sentiment

#: (figure, text, bound, higher is better)
TARGETS = {
    "accuracy": ("≥ 85 %", labels.TARGET_ACCURACY, True),
    "median_us": ("≤ 100 µs", 100.0, False),
    "p99_us": ("≤ 1 ms", 1000.0, False),
    "worst_hostile_ms": ("≤ 5 ms", 5.0, False),
}


def verdict(figure: str, value: float) -> str:
    _, bound, higher = TARGETS[figure]
    ok = value >= bound if higher else value <= bound
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sentiment", description=__doc__)
    parser.add_argument("--scorer", default="lexicon", help="scorer name (default: lexicon)")
    parser.add_argument("--repeats", type=int, default=20, help="timing passes over the texts")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    return parser


def measure(scorer: str, repeats: int) -> dict[str, Any]:
    started = time.perf_counter()
    analyser = sentiment(scorer)
    analyser.warm_up()
    out: dict[str, Any] = {"scorer": scorer, "load_s": time.perf_counter() - started}
    out["accuracy"] = {
        which: {lang: labels.evaluate(analyser, lang, which) for lang in labels.LANGUAGES}
        for which in labels.SETS
    }
    others = labels.other_languages()
    out["other"] = [(code, text, analyser.score(text)) for code, text in others]
    out["cost"] = {}
    for lang in labels.LANGUAGES:
        texts = [t.text for t in labels.texts(lang)]
        times = cost.per_text_us(analyser, texts, repeats)
        out["cost"][lang] = {
            "median_us": cost.percentile(times, 0.5),
            "p99_us": cost.percentile(times, 0.99),
        }
    out["hostile"] = sorted(cost.worst_hostile(analyser, labels.LANGUAGES), key=lambda c: -c[1])
    return out


def accuracy_table(results: dict[str, Any]) -> Table:
    table = Table(
        title="Accuracy on clearly polar texts (labelled/: written before the rules)",
        title_justify="left",
    )
    columns = ("language", "polar right", "accuracy", "target", "", "neutral right", "unscored",
               "language missed", "held-out polar", "held-out neutral")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "language" else "right")
    for lang in labels.LANGUAGES:
        ev = results["accuracy"]["labelled"][lang]
        held = results["accuracy"]["heldout"][lang]
        unscored = sum(ev.confusion[t, Polarity.UNSCORED] for t in labels.TRUTHS)
        table.add_row(
            lang,
            f"{ev.polar_right}/{ev.polar}",
            f"{ev.accuracy:.1%}",
            TARGETS["accuracy"][0],
            verdict("accuracy", ev.accuracy),
            f"{ev.neutral_right}/{ev.count(Polarity.NEUTRAL)}",
            str(unscored),
            str(ev.wrong_language),
            f"{held.polar_right}/{held.polar} ({held.accuracy:.1%})",
            f"{held.neutral_right}/{held.count(Polarity.NEUTRAL)}",
        )
    return table


def confusion_table(results: dict[str, Any]) -> Table:
    table = Table(title="Confusion counts, labelled/ (true ↓, predicted →)", title_justify="left")
    table.add_column("language")
    table.add_column("true")
    for predicted in labels.PREDICTIONS:
        table.add_column(predicted.value, justify="right")
    for lang in labels.LANGUAGES:
        ev = results["accuracy"]["labelled"][lang]
        for truth in labels.TRUTHS:
            cells = [str(ev.confusion[truth, p]) for p in labels.PREDICTIONS]
            table.add_row(lang if truth is Polarity.POSITIVE else "", truth.value, *cells)
    return table


def cost_table(results: dict[str, Any]) -> Table:
    table = Table(
        title="CPU time per text, detection and scoring (labelled/)", title_justify="left"
    )
    for column in ("language", "median", "target", "", "p99", "target", ""):
        table.add_column(column, justify="left" if column == "language" else "right")
    for lang, figures in results["cost"].items():
        table.add_row(
            lang,
            f"{figures['median_us']:.1f} µs",
            TARGETS["median_us"][0],
            verdict("median_us", figures["median_us"]),
            f"{figures['p99_us']:.1f} µs",
            TARGETS["p99_us"][0],
            verdict("p99_us", figures["p99_us"]),
        )
    return table


def hostile_table(results: dict[str, Any]) -> Table:
    table = Table(
        title=f"Hostile texts of {cost.MAX_CHARS:,} characters, the costliest first "
        f"(CPU time, median of 5 calls; {len(results['hostile'])} cases)",
        title_justify="left",
    )
    for column in ("case", "ms", "target", ""):
        table.add_column(column, justify="left" if column == "case" else "right")
    for index, (case, ms) in enumerate(results["hostile"][:5]):
        table.add_row(
            case,
            f"{ms:.2f}",
            TARGETS["worst_hostile_ms"][0] if index == 0 else "",
            verdict("worst_hostile_ms", ms) if index == 0 else "",
        )
    return table


def failures(results: dict[str, Any]) -> list[str]:
    out = [
        f"accuracy {lang}"
        for lang, ev in results["accuracy"]["labelled"].items()
        if ev.accuracy < labels.TARGET_ACCURACY
    ]
    for lang, figures in results["cost"].items():
        out += [f"{f} {lang}" for f in ("median_us", "p99_us") if figures[f] > TARGETS[f][1]]
    if results["hostile"][0][1] > TARGETS["worst_hostile_ms"][1]:
        out.append("worst_hostile_ms")
    return out


def as_json(results: dict[str, Any]) -> dict[str, Any]:
    def evaluation(ev: labels.Evaluation) -> dict[str, Any]:
        return {
            "accuracy": ev.accuracy,
            "polar_right": ev.polar_right,
            "polar": ev.polar,
            "neutral_right": ev.neutral_right,
            "wrong_language": ev.wrong_language,
            "confusion": {f"{t.value}->{p.value}": n for (t, p), n in ev.confusion.items()},
        }

    return {
        "scorer": results["scorer"],
        "load_s": results["load_s"],
        "accuracy": {
            which: {lang: evaluation(ev) for lang, ev in per.items()}
            for which, per in results["accuracy"].items()
        },
        "other_languages": [
            {"language": code, "told": s.language, "polarity": s.polarity.value}
            for code, _, s in results["other"]
        ],
        "cost": results["cost"],
        "hostile_ms": dict(results["hostile"]),
        "failed": failures(results),
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = measure(args.scorer, args.repeats)
    console = Console(width=130)
    console.print(accuracy_table(results))
    console.print(confusion_table(results))
    scored = [(code, s) for code, _, s in results["other"] if s.scored]
    console.print(
        f"Other languages: {len(results['other']) - len(scored)}/{len(results['other'])} "
        "unscored" + "".join(f"; {code} told {s.language}, {s.polarity}" for code, s in scored)
    )
    console.print(cost_table(results))
    console.print(hostile_table(results))
    console.print(
        f"Start-up (lexicons and language model loaded): {results['load_s']:.2f} s. "
        f"Machine: {machine()['cpu_model']}, {machine()['nproc']} cores."
    )
    failed = failures(results)
    console.print(
        "[red]Targets missed: " + ", ".join(failed) + "[/red]"
        if failed
        else "[green]Every target met.[/green]"
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(as_json(results), option=orjson.OPT_INDENT_2))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
