"""bench.common: process sampling from /proc, percentiles, result files."""

from __future__ import annotations

import json
import time

import numpy as np

from semiostream.bench import common


def test_process_sampler_sees_cpu_and_memory():
    s = common.ProcessSampler()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:  # burn CPU
        sum(range(1000))
    big = np.ones(64 * 2**20 // 8)  # 64 MiB touched
    out = s.sample()
    assert out["cpu_percent"] > 20
    assert out["rss_mib"] > 64 and s.peak_rss_mib >= out["rss_mib"]
    del big


def test_percentiles_and_result_file(tmp_path):
    p = common.percentiles(list(range(1, 101)))
    assert p["p50"] == 50.5 and p["max"] == 100 and p["n"] == 100 and 98 < p["p99"] < 100
    assert common.percentiles([])["p99"] is None
    path = common.write_result("demo", {"x": np.float32(1.5), "a": np.arange(2)}, tmp_path)
    assert path.name == f"demo_{common.machine_tag()}.json"
    assert json.loads(path.read_text()) == {"x": 1.5, "a": [0, 1]}
