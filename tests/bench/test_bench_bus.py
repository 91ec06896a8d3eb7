"""bench bus: a tiny transport run (2 beds, 2 s) through the real publishers and service (tool checks)."""

from __future__ import annotations

import json

from semiostream.bench import bus


def test_run_point_counts_frames_end_to_end():
    p = bus.run_point(2, seconds=2.0, width=64, height=48, processes=1)
    assert p["frames_due"] == 120 and p["processes"] == 1
    assert p["frames_sent"] + p["dropped_at_publishers"] <= 120
    assert p["frames_received"] <= p["frames_sent"]
    assert p["frames_lost"] == 120 - p["frames_received"] and 0 <= p["loss_fraction"] <= 1
    assert p["frames_received"] > 60  # a tiny load on loopback arrives (almost) entirely
    assert p["windows_assembled"] >= 2  # hop 60 at 30 fps: one window per bed by 2 s
    assert p["receiver_rss_mib"]["max"] > 10 and p["receiver_cpu_percent"]["mean"] is not None
    assert p["ok"] == (p["loss_fraction"] < 0.01 and p["bounded_rss"])


def test_cli_sweep_writes_json_and_plot(tmp_path):
    from semiostream.cli import main

    assert main(["bench", "bus", "--beds", "1", "2", "--seconds", "2", "--width", "32", "--height", "24",
                 "--processes", "1", "--out", str(tmp_path)]) == 0
    data = json.loads(next(tmp_path.glob("bus_*.json")).read_text())
    assert [p["beds"] for p in data["points"]] == [1, 2]
    assert data["scoring"].startswith("excluded")
    assert data["largest_ok_beds"] in (None, 1, 2)
    assert "cpu" in data["machine"] and next(tmp_path.glob("bus_*_loss.png")).stat().st_size > 1000
