"""The command line as a user meets it: mistakes are one line with exit code 2, --help shows
every default, `rules --check` and `produce --dry-run` work without a broker."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.tools.cli import main
from stream.tools.generate import generate
from tests.unit.tools.test_generate import START

#: a port nothing listens on: commands that must not need the broker are pointed at it
NO_BROKER = "kafka://127.0.0.1:9"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `cxkpi argv`."""
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("generate", "--count", "-3"), "'-3' is not a whole number greater than zero"),
        (("generate", "--rate", "0"), "'0' is not a number greater than zero"),
        (("generate", "--duration=-1m"), "'-1m' is not a duration such as 30s"),
        (("generate", "--out", "/no/such/folder/events.jsonl"), "folder '/no/such/folder'"),
        (("generate", "--activity-share", "1.5"), "'1.5' is not a number from 0 to 1"),
        (("rules", "--out", "/no/such/folder/rules.yml"), "does not exist"),
        (("dashboard", "--out", "/no/such/folder/d.json"), "does not exist"),
        (("dev", "--run-for", "soon"), "'soon' is not a duration"),
        (("produce", "/no/such/events.jsonl", "--broker", NO_BROKER), "no such file"),
        (("produce", "/", "--broker", NO_BROKER), "/ is a folder"),
        (
            ("worker", "--windows", "7m", "--broker", NO_BROKER),
            "invalid windows 7m from flag --windows: the alerts in cxkpi.toml use windows "
            "these lack: 1h, 24h",
        ),
    ],
)
def test_a_users_mistake_is_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert says in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "parse_duration" not in err


def test_help_shows_the_defaults_the_commands_use(capsys: pytest.CaptureFixture[str]) -> None:
    _, dev, _ = run(capsys, "dev", "--help")
    assert "(default: 40)" in dev and "(default: 1)" in dev  # --rate, --seed
    flat = " ".join(dev.split())
    assert "CXKPI_INACTIVITY_TIMEOUT; default 2m]" in flat  # the demo's, not the worker's 30m
    _, generate_help, _ = run(capsys, "generate", "--help")
    flat = " ".join(generate_help.split())
    assert "events per second (default: 20)" in flat and "random seed (default: 0)" in flat
    assert "runs until Ctrl-C" in flat
    assert "(0: no activity, and a log that does not depend on the time of day; default 0.03)" in (
        flat
    )


def test_generate_without_activity(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--activity-share 0: no user's event, where the default has some."""
    logs = {}
    for share in ("0.03", "0"):
        out = tmp_path / f"{share}.jsonl"
        argv = ("generate", "--count", "3000", "--seed", "4", "--activity-share", share)
        code, _, _ = run(capsys, *argv, "--start", "2026-12-01T12:00:00Z", "--out", str(out))
        assert code == 0
        logs[share] = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert any("user_id" in e for e in logs["0.03"])
    assert not any("user_id" in e for e in logs["0"])


def test_rules_check_compares_the_committed_file_by_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "rules", "--check")
    assert code == 0 and "cxkpi.rules.yml is up to date" in out
    code, out, _ = run(capsys, "rules", "--format", "prometheus-rule", "--check")
    assert code == 0 and "deploy/kubernetes/prometheusrule.yaml is up to date" in out
    code, _, err = run(capsys, "dashboard", "--check", "--out", str(tmp_path / "none.json"))
    assert code == 1 and "none.json is missing: run `cxkpi dashboard --config" in err
    stale = tmp_path / "rules.yml"
    stale.write_text("groups: []\n")
    config = str(Path(__file__).resolve().parents[3] / "cxkpi.toml")
    code, _, err = run(capsys, "rules", "--check", "--out", str(stale), "--config", config)
    assert code == 1 and f"is stale: run `cxkpi rules --config {config} --out {stale}`" in err


def test_produce_dry_run_validates_every_line_without_a_broker(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [orjson.dumps(e) for e in generate(3, START, 10.0, count=30)]
    lines.insert(4, b'{"type": "refund_issued"}')
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(capsys, "produce", str(events), "--dry-run", "--broker", NO_BROKER)
    assert code == 1
    assert "dry run: nothing sent, valid 30 events" in out
    assert "line 5: unknown_type: type 'refund_issued' is not an event type" in err
    for kind in ("order_placed (cart-events)", "ticket_opened", "csat"):
        assert kind in err  # the known types of every topic, not of one
    code, out, _ = run(capsys, "produce", "/dev/null", "--dry-run", "--broker", NO_BROKER)
    assert code == 0 and "valid 0 events" in out


def test_worker_help_states_the_start_up_and_output_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, text, _ = run(capsys, "worker", "--help")
    flat = " ".join(text.split())
    assert "--exit-if-no-broker-after DURATION" in flat
    assert "(default: wait for it, with /ready 503 and a log line every 30 s)" in flat
    assert "CXKPI_LOG_FORMAT; default text]" in flat and "CXKPI_DATA_DIR; default" in flat


def test_a_production_worker_without_a_customer_key_secret_refuses_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anything else (no broker is needed to find out), and never with the secret's
    value in the message."""
    monkeypatch.delenv("CXKPI_CUSTOMER_KEY_SECRET", raising=False)
    code, _, err = run(capsys, "worker", "--profile", "production", "--config", "none")
    assert code == 2
    assert err.count("\n") == 1 and "CXKPI_CUSTOMER_KEY_SECRET" in err
    assert "Traceback" not in err


def test_a_production_worker_with_engagement_on_needs_the_key_secret_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The activity topic's users are keyed with the customer key secret: with the customer
    KPIs off but the engagement KPIs on, a production worker still refuses to start without it."""
    monkeypatch.delenv("CXKPI_CUSTOMER_KEY_SECRET", raising=False)
    config = tmp_path / "cxkpi.toml"
    config.write_text("[kpis.customers]\nenabled = false\n")
    code, _, err = run(capsys, "worker", "--profile", "production", "--config", str(config))
    assert code == 2 and "engagement" in err and "CXKPI_CUSTOMER_KEY_SECRET" in err
    assert err.count("\n") == 1 and "Traceback" not in err
