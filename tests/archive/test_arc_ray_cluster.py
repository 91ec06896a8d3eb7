"""`semiostream score --ray ADDRESS` on a real multi-node Ray cluster: a head and a worker node started with
`ray start` on loopback (1 CPU each, torn down by process group), the driver in its own process as a user
runs it. Rows equal the local run's exactly once, windows are scored on both nodes, actors that no node can
hold are refused in seconds, and a worker node killed with SIGKILL mid-run costs no row after the resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from arc_helpers import FAST, rows_by_key
from waiting import wait_until

from semiostream.archive.output import inputs_path, read_table
from semiostream.archive.ray_runner import NodeInfo, actor_shape
from semiostream.bench.ray_cluster import LoopbackCluster
from semiostream.cli import main
from semiostream.core.errors import UserError

ray = pytest.importorskip("ray", reason="needs Ray: pip install 'semiostream[ray]' (part of the dev extra)")

def test_actor_size_is_chosen_per_node_not_from_the_cluster_sum():
    two = [NodeInfo("a" * 56, "10.0.0.1", 1, 0), NodeInfo("b" * 56, "10.0.0.2", 1, 0)]
    assert actor_shape(two) == ({"num_cpus": 1}, 2)  # the cluster's 2 CPUs are on two nodes
    assert actor_shape([NodeInfo("a" * 56, "h", 8, 0), NodeInfo("b" * 56, "w", 3, 0)]) == ({"num_cpus": 4}, 2)
    assert actor_shape([NodeInfo("a" * 56, "h", 8, 0), NodeInfo("b" * 56, "w", 3, 0)], cpus_per_actor=3) \
        == ({"num_cpus": 3}, 3)
    assert actor_shape([NodeInfo("a" * 56, "h", 8, 0), NodeInfo("b" * 56, "g", 4, 2)]) == ({"num_gpus": 1}, 2)
    with pytest.raises(UserError, match=r"no node has 2 CPUs .*10\.0\.0\.1/aaaaaaaa 1 CPU.*pass --cpus-per-actor 1 "):
        actor_shape(two, cpus_per_actor=2)
    with pytest.raises(UserError, match=r"--actors 3 of 1 CPU\(s\) each .* room for 2; pass --actors 2 or fewer"):
        actor_shape(two, actors=3)
    with pytest.raises(UserError, match=r"one GPU .* pass --actors 2 or fewer"):
        actor_shape([NodeInfo("b" * 56, "g", 4, 2)], actors=3)


#: Ray Data logs a failure the way it does when the actor pool does not start in time, after ``quiet_ray_data``
RAY_DATA_FAILURE = """
import logging, sys
from semiostream.core.log import setup_logging
setup_logging(int(sys.argv[1]))
from semiostream.archive.ray_runner import quiet_ray_data
quiet_ray_data()
quiet_ray_data()  # twice: one filter
import ray.exceptions
try:
    raise ray.exceptions.GetTimeoutError("Timed out while starting actors")
except Exception:
    logging.getLogger("ray.data.exceptions").exception("Full stack trace:")
print(len(logging.getLogger("ray.data.exceptions").filters))
"""


@pytest.mark.parametrize("verbose", [0, 2])
def test_ray_data_tracebacks_stay_off_the_terminal_unless_debug(verbose):
    r = subprocess.run([sys.executable, "-c", RAY_DATA_FAILURE, str(verbose)], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    if verbose:
        assert "Traceback" in out and "Timed out while starting actors" in out  # -vv: printed
    else:
        assert "Traceback" not in out and "Timed out" not in out, out[-3000:]
        assert r.stdout.strip() == "1"


#: another Ray job that holds one CPU until it is killed
HOLD = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
@ray.remote(num_cpus=1)
class Hold:
    def ping(self):
        return 1
h = Hold.remote()
ray.get(h.ping.remote())
print("holding", flush=True)
time.sleep(600)  # kept: holds its CPU until the test kills it
"""


def _score(args: list[str], timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``semiostream score`` as a driver of the cluster, with the cluster's environment (its RAY_AUTH_MODE: a
    local ray.init earlier in this process leaves RAY_AUTH_MODE=token in os.environ, which the nodes do not use)."""
    return subprocess.run([sys.executable, "-m", "semiostream.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


def _done(parts: Path) -> list[dict]:
    try:
        text = (parts / "done.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(x) for x in text.splitlines() if x.endswith("}")]


def _same_rows(out: Path, want: Path) -> None:
    for got_t, want_t, key in ((out, want, ("input_id", "window")),
                               (inputs_path(out), inputs_path(want), ("input_id",))):
        got, ref = rows_by_key(read_table(got_t), key), rows_by_key(read_table(want_t), key)  # no duplicate
        assert got.keys() == ref.keys()  # none lost, none added
        for k, row in ref.items():
            for col, v in row.items():
                if col in ("p_tle", "p_min", "p_max") and v is not None:  # 1-CPU actors run oneDNN on one
                    assert got[k][col] == pytest.approx(v, abs=1e-5), (k, col)  # thread: ~2e-6 off here
                else:
                    assert got[k][col] == v, (k, col)


@pytest.mark.slow
def test_two_node_loopback_cluster_rows_nodes_refusal_and_a_killed_worker(arc_clips, arc_bundle, tmp_path, capsys):
    args = ["score", str(arc_clips), "--bundle", str(arc_bundle), *FAST, "--max-batch", "1"]
    cluster = LoopbackCluster(nodes=2, cpus=1, start_workers=False)  # the head starts during the local run
    try:
        local = tmp_path / "local" / "res.parquet"
        assert main([*args, "--out", str(local)]) == 0  # while the head starts
        assert "6 scored now" in capsys.readouterr().out
        cluster.start_workers()
        ray_args = [*args, "--ray", cluster.address]

        # 1. an actor no node can hold (2 CPUs: the cluster has 2, but 1 per node): refused at once, one line
        t0 = time.monotonic()
        r = _score([*ray_args, "--cpus-per-actor", "2", "--out", str(tmp_path / "refused" / "res.parquet")], 120, cluster.env)
        took = time.monotonic() - t0
        print(f"refused in {took:.1f} s: {r.stderr.strip().splitlines()[-1]}")
        assert r.returncode == 2, r.stderr[-3000:]
        err = [x for x in r.stderr.splitlines() if "error:" in x]
        assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
        assert re.search(r"--cpus-per-actor 2 cannot be placed: an actor runs on one node and no node has 2 CPUs "
                         r"\(2 node\(s\): .* 1 CPU, .* 1 CPU\); pass --cpus-per-actor 1 or fewer", err[0]), err[0]
        assert took < 60, f"the refusal took {took:.0f} s"

        # 2. the defaults (1 CPU per actor, as many as the nodes hold = 2): same rows, both nodes score
        on_ray = tmp_path / "ray" / "res.parquet"
        r = _score(["-v", *ray_args, "--out", str(on_ray)], 300, cluster.env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "6 inputs: 6 scored now, 0 from earlier runs, 0 failed" in r.stdout
        per_node = re.search(r"windows scored per node: (.*)", r.stderr)
        assert per_node, r.stderr[-3000:]
        counts = dict(re.findall(r"(\S+/[0-9a-f]{8}) (\d+)", per_node.group(1)))
        print(f"windows per node: {counts}; the driver log: {per_node.group(0)}")
        assert len(counts) == 2 and sum(map(int, counts.values())) == 12 and min(map(int, counts.values())) > 0
        _same_rows(on_ray, local)

        # 3. SIGKILL the worker node once the first input is written: Ray moves its work to the head's actor, or
        #    the run stops saying why (no silent wait); the same command again completes: every row once
        out = tmp_path / "killed" / "res.parquet"
        parts = out.with_name("res.parquet.parts")
        kill_args = [*ray_args, "--out", str(out), "--ray-stall-s", "45"]
        proc = subprocess.Popen([sys.executable, "-m", "semiostream.cli", "-v", *kill_args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=cluster.env)
        try:
            wait_until(lambda: proc.poll() is not None or _done(parts), timeout=180, what="a finished input")
            assert proc.poll() is None, f"the run ended before the kill: {proc.communicate()[1][-3000:]}"
            cluster.kill("worker1")
            t_kill, at_kill = time.monotonic(), _done(parts)
            stdout, stderr = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        print(f"killed run: rc {proc.returncode} {time.monotonic() - t_kill:.0f} s after the kill, {len(at_kill)} "
              f"inputs done at the kill; {stdout[-300:]} {stderr[-1500:]}")
        assert 1 <= len(at_kill) < 6, "the kill did not land mid-run"
        assert "Traceback" not in stderr
        if proc.returncode != 0:  # stopped: the reason, then a resume
            assert proc.returncode == 2, stderr[-3000:]
            assert re.search(r"error: no window was scored on Ray for 45 s \(\d+/12 windows done\): .*run the "
                             r"same command again to resume", stderr), stderr[-3000:]
            assert not out.exists()  # the tables are only written by a complete run
        kept = _done(parts)
        assert {d["key"] for d in at_kill} <= {d["key"] for d in kept}
        r = _score(kill_args, 300, cluster.env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"6 inputs: {6 - len(kept)} scored now, {len(kept)} from earlier runs, 0 failed" in r.stdout, r.stdout
        _same_rows(out, local)
        assert len(read_table(out)) == 12

        # 4. no silent wait: another job holds the only CPU left, so the actor cannot start; the run stops with
        #    the reason within the bound
        holder = subprocess.Popen([sys.executable, "-c", HOLD, cluster.address], stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL, start_new_session=True, env=cluster.env)
        try:
            assert holder.stdout.readline().strip() == "holding", "the holder could not take the CPU"
            t0 = time.monotonic()
            r = _score([*ray_args, "--out", str(tmp_path / "stalled" / "res.parquet"), "--ray-stall-s", "20"], 150, cluster.env)
            took = time.monotonic() - t0
        finally:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(30)
        print(f"stalled run: rc {r.returncode} after {took:.0f} s: {r.stderr[-1500:]}")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
        assert re.search(r"error: no window was scored on Ray for 20 s \(0/12 windows done\): 1 of 1 actors are "
                         r"not running \(1 PENDING_CREATION\).*each actor needs 1 CPU; free now: \S+/[0-9a-f]{8} 0 CPU",
                         r.stderr), r.stderr[-3000:]
        assert took < 20 + 60
    finally:
        cluster.close()
