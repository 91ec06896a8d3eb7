"""``semiostream events``: listing and export of a real results database (table, CSV, JSON), filters,
``--windows``, ``--config``, and user errors as one-line messages (in-process and in a real subprocess)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.store import ResultStore
from semiostream.cli import main

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
HOUR = 3600 * 10**9
BUNDLE = "3f2a9c0d11b2e4aa"


def _window(bed: str, i: int, p: float, event_id: str | None) -> ScoreResult:
    first = T0 + i * 2 * 10**9
    return ScoreResult(bed=bed, first_seq=60 * i, last_seq=60 * i + 59, first_t_ns=first,
                       last_t_ns=first + 1_966_000_000, p_tle=p, label="TLE" if p >= 0.5 else "FLE",
                       bundle_id=BUNDLE, latency_ms=400.0 + i, event_id=event_id)


@pytest.fixture
def db(tmp_path):
    """bed-01: a closed event (3 windows, mean 0.75, 95 s) at 16:00 on 2025-11-24; bed-02: a stopping event
    at 17:00; bed-01: an open event at 16:00 the next day (2 windows so far)."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.open_event("bed-01", "bed-01-aaaa", T0)
        for i, p in enumerate([0.5, 0.75, 1.0]):
            store.add_window(_window("bed-01", i, p, "bed-01-aaaa"))
        store.stop_event("bed-01-aaaa", T0 + 95 * 10**9)
        store.finish_event(EventResult("bed-01", "bed-01-aaaa", T0, T0 + 95 * 10**9, 3, 0.75, "TLE", BUNDLE))
        store.open_event("bed-02", "bed-02-bbbb", T0 + HOUR)
        store.add_window(_window("bed-02", 10, 0.25, "bed-02-bbbb"))
        store.stop_event("bed-02-bbbb", T0 + HOUR + 30 * 10**9)
        store.open_event("bed-01", "bed-01-cccc", T0 + 24 * HOUR)
        store.add_window(_window("bed-01", 20, 0.125, "bed-01-cccc"))
        store.add_window(_window("bed-01", 21, 0.375, "bed-01-cccc"))
        store.add_window(_window("bed-03", 30, 0.9, None))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["events", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_table(db, capsys):
    rc, out, err = run(capsys, "--db", str(db))
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["bed", "event", "start", "(UTC)", "stop", "(UTC)", "duration", "windows", "p(TLE)",
                                "label", "bundle", "state"]
    assert lines[2].split() == ["bed-01", "bed-01-aaaa", "2025-11-24T16:00:00Z", "2025-11-24T16:01:35Z", "1m35s",
                                "3", "0.750", "TLE", BUNDLE, "closed"]
    assert lines[3].split() == ["bed-02", "bed-02-bbbb", "2025-11-24T17:00:00Z", "2025-11-24T17:00:30Z", "30.0s",
                                "1", "-", "-", "-", "stopping"]
    assert lines[4].split() == ["bed-01", "bed-01-cccc", "2025-11-25T16:00:00Z", "-", "-", "2", "-", "-", "-",
                                "open"]
    assert lines[5] == "3 events" and len(lines) == 6


def test_csv_and_json_exports_agree(db, capsys, tmp_path):
    rc, out, _ = run(capsys, "--db", str(db), "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["event_id"] for r in rows] == ["bed-01-aaaa", "bed-02-bbbb", "bed-01-cccc"]
    assert rows[0] == {"event_id": "bed-01-aaaa", "bed": "bed-01", "start": "2025-11-24T16:00:00.000Z",
                       "stop": "2025-11-24T16:01:35.000Z", "duration_s": "95.0", "windows": "3", "p_tle": "0.75",
                       "label": "TLE", "bundle_id": BUNDLE, "state": "closed", "start_t_ns": str(T0),
                       "stop_t_ns": str(T0 + 95 * 10**9)}
    assert (rows[2]["stop"], rows[2]["p_tle"], rows[2]["state"], rows[2]["windows"]) == ("", "", "open", "2")

    out_file = tmp_path / "events.json"  # format from the suffix; nothing on stdout
    rc, out, _ = run(capsys, "--db", str(db), "--out", str(out_file))
    assert rc == 0 and out == ""
    records = json.loads(out_file.read_text())
    assert [r["event_id"] for r in records] == [r["event_id"] for r in rows]
    assert records[0]["p_tle"] == 0.75 and records[0]["duration_s"] == 95.0 and records[0]["start_t_ns"] == T0
    assert records[2]["stop"] is None and records[2]["p_tle"] is None and records[2]["windows"] == 2
    assert set(records[0]) == set(rows[0])


def test_windows_export(db, capsys):
    rc, out, _ = run(capsys, "--db", str(db), "--windows", "bed-01-aaaa", "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [float(r["p_tle"]) for r in rows] == [0.5, 0.75, 1.0]
    assert [(r["first_seq"], r["last_seq"]) for r in rows] == [("0", "59"), ("60", "119"), ("120", "179")]
    assert rows[1]["first_t"] == "2025-11-24T16:00:02.000Z" and rows[1]["last_t"] == "2025-11-24T16:00:03.966Z"
    assert {r["event_id"] for r in rows} == {"bed-01-aaaa"} and rows[0]["latency_ms"] == "400.0"

    rc, out, _ = run(capsys, "--db", str(db), "--windows", "bed-01-cccc", "--format", "json")
    assert [w["p_tle"] for w in json.loads(out)] == [0.125, 0.375]
    rc, out, _ = run(capsys, "--db", str(db), "--windows", "bed-01-cccc")
    assert rc == 0 and out.splitlines()[-1] == "2 windows of event bed-01-cccc"
    assert out.splitlines()[2].split() == ["1200", "1259", "2025-11-24T16:00:40.000Z", "2025-11-24T16:00:41.966Z",
                                           "0.125", "FLE", "420.0"]


def test_filters(db, capsys):
    def ids(*argv: str) -> list[str]:
        rc, out, err = run(capsys, "--db", str(db), "--format", "json", *argv)
        assert rc == 0, err
        return [r["event_id"] for r in json.loads(out)]

    assert ids("--bed", "bed-01") == ["bed-01-aaaa", "bed-01-cccc"]
    assert ids("--bed", "bed-09") == []
    assert ids("--since", "2025-11-24T16:30") == ["bed-02-bbbb", "bed-01-cccc"]
    assert ids("--since", "2025-11-24T17:30:00+01:00") == ["bed-02-bbbb", "bed-01-cccc"]  # offset honoured
    assert ids("--until", "2025-11-24") == ["bed-01-aaaa", "bed-02-bbbb"]  # a date includes that whole day
    assert ids("--until", "2025-11-24T17:00Z") == ["bed-01-aaaa"]  # a time is exclusive
    assert ids("--since", "2025-11-25", "--until", "2025-11-25") == ["bed-01-cccc"]
    assert ids("--limit", "2") == ["bed-02-bbbb", "bed-01-cccc"]  # the most recent, oldest first


def test_reads_while_the_scorer_writes(db, capsys):
    with ResultStore(db) as writer:
        writer.add_window(_window("bed-01", 22, 0.5, "bed-01-cccc"))
        rc, out, _ = run(capsys, "--db", str(db), "--bed", "bed-01", "--since", "2025-11-25", "--format", "json")
        assert rc == 0 and json.loads(out)[0]["windows"] == 3
        writer.add_window(_window("bed-01", 23, 0.5, "bed-01-cccc"))  # the listing held no lock


def test_user_errors_are_one_line_messages(db, tmp_path, capsys):
    missing = tmp_path / "nope.sqlite"
    cases = [
        (["--db", str(missing)], "no results database at"),
        (["--db", str(tmp_path)], "is a folder"),
        (["--db", str(db), "--since", "last tuesday"], "not an ISO date or time"),
        (["--db", str(db), "--since", "2025-11-25", "--until", "2025-11-24T12:00"], "is not before --until"),
        (["--db", str(db), "--windows", "bed-09-zzzz"], "no event 'bed-09-zzzz'"),
        (["--db", str(db), "--windows", "bed-01-aaaa", "--bed", "bed-01"], "drop --bed"),
        (["--db", str(db), "--out", str(tmp_path / "no" / "dir.csv")], "does not exist"),
    ]
    for argv, message in cases:
        rc, out, err = run(capsys, *argv)
        assert rc == 2, argv
        assert err.startswith("semiostream events: error: ") and message in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not missing.exists()  # listing never creates a database

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 512)
    rc, _, err = run(capsys, "--db", str(corrupt))
    assert rc == 2 and "corrupt or not a SQLite file" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:  # argparse usage errors
        main(["events", "--db", str(db), "--limit", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["events"])  # --db or --config is required
    capsys.readouterr()


def test_config_store_path(db, tmp_path, capsys):
    from semiostream.bus.config import ServiceConfig

    if "store" not in ServiceConfig.model_fields:
        pytest.skip("this semiostream's scorer config has no store section")
    conf_dir = db.parent
    (conf_dir / "scorer.yaml").write_text(f"bundle: bundles/b\nstore: {{path: {db.name}, retention_days: 7}}\n")
    rc, out, err = run(capsys, "--config", str(conf_dir / "scorer.yaml"), "--format", "json")
    assert rc == 0, err
    assert len(json.loads(out)) == 3  # store.path is relative to the config's folder
    (conf_dir / "off.yaml").write_text("bundle: bundles/b\nstore: {path: null}\n")
    rc, _, err = run(capsys, "--config", str(conf_dir / "off.yaml"))
    assert rc == 2 and "store.path: null" in err


def test_real_subprocess(db, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "semiostream.cli", "events", "--db", str(db), "--format", "json"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert [r["state"] for r in json.loads(ok.stdout)] == ["closed", "stopping", "open"]
    missing = tmp_path / "absent.sqlite"
    bad = subprocess.run([sys.executable, "-m", "semiostream.cli", "events", "--db", str(missing)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        f"semiostream events: error: no results database at {missing}; check the path (the scorer creates it "
        "when it starts with a store configured)"]
    assert not missing.exists()
