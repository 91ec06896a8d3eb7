"""Final tables: both formats, schema, sort order, nulls, atomic replacement."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from semiostream.archive.facts import InputFacts
from semiostream.archive.output import inputs_path, output_format, read_table, write_tables
from semiostream.archive.plan import JobPlan
from semiostream.archive.rows import input_row, window_columns
from semiostream.archive.schema import INPUT_COLUMNS, WINDOW_COLUMNS, column_names
from semiostream.core.errors import UserError
from semiostream.core.segment import Segment


def _plan(path, n, start=0):
    starts = np.arange(n, dtype=np.int64) * 16 + start
    return JobPlan(Segment(path), "k", "sha", 100, 15.0, start, start + 16 * n, starts, starts + 16,
                   starts / 15.0, (starts + 15) / 15.0, (1, 2, 30, 40))


def _inputs(tmp_path):
    pa_, pb = _plan(tmp_path / "b.mkv", 3), _plan(tmp_path / "a.mkv", 2, start=5)
    probs_a, probs_b = np.array([0.1, 0.3], np.float32), np.array([0.9, 0.7, 0.123456789], np.float32)
    kw = {"bundle_id": "bid", "backend": "torch-cpu-fp32", "training_data": "synthetic"}
    ok_b = input_row(pa_.job, plan=pa_, probs=probs_b, facts=InputFacts("8-bit colour", "yuv420p h264, colour",
                                                                        True, 0.8125), **kw)
    ok_a = input_row(pb.job, plan=pb, probs=probs_a, facts=InputFacts("16-bit gray", "gray16le ffv1", False), **kw)
    bad = input_row(Segment(tmp_path / "c.mkv", patient_id="P"), error="corrupt, really", **kw)
    # windows of b deliberately out of order: the output sorts them
    wb = window_columns(pa_, probs_b)
    wb = {c: v[::-1] for c, v in wb.items()}
    handles = {"b": wb, "a": window_columns(pb, probs_a)}
    return [(ok_b, "b"), (bad, None), (ok_a, "a")], handles, probs_a, probs_b


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_tables_are_sorted_typed_and_equal_in_both_formats(tmp_path, suffix):
    inputs, handles, probs_a, probs_b = _inputs(tmp_path)
    out = tmp_path / f"res{suffix}"
    nw, ni = write_tables(out, inputs, handles.__getitem__, metadata={"bundle_id": "bid"})
    assert (nw, ni) == (5, 3)
    windows, videos = read_table(out), read_table(inputs_path(out))
    assert [list(r) for r in windows[:1]] == [column_names(WINDOW_COLUMNS)]
    assert list(videos[0]) == column_names(INPUT_COLUMNS)
    assert [(r["path"].rsplit("/", 1)[1], r["window"]) for r in windows] == \
        [("a.mkv", 0), ("a.mkv", 1), ("b.mkv", 0), ("b.mkv", 1), ("b.mkv", 2)]
    assert [r["p_tle"] for r in windows] == [float(p) for p in probs_a] + [float(p) for p in probs_b]
    assert windows[2]["first_frame"] == 0 and windows[2]["last_frame"] == 15 and windows[0]["first_frame"] == 5
    assert [v["input_id"].rsplit("/", 1)[1] for v in videos] == ["a.mkv", "b.mkv", "c.mkv"]
    a, b, c = videos
    assert a["p_tle"] == pytest.approx(float(np.mean(probs_a.astype(np.float64)))) and a["label"] == "FLE"
    assert b["label"] == "TLE" and b["windows"] == 3 and b["roi"] == "1 2 30 40"
    assert c["error"] == "corrupt, really" and c["p_tle"] is None and c["windows"] == 0 and c["patient_id"] == "P"
    # what a reader needs to judge each result, typed back the same in both formats (null = not known)
    assert [(v["kind"], v["person_found"], v["person_score"]) for v in videos] == \
        [("16-bit gray", False, None), ("8-bit colour", True, 0.8125), (None, None, None)]
    assert b["kind_detail"] == "yuv420p h264, colour" and {v["training_data"] for v in videos} == {"synthetic"}
    if suffix == ".parquet":
        meta = pq.read_schema(out).metadata
        assert meta[b"bundle_id"] == b"bid"
        assert pq.read_schema(out).field("p_tle").type == "double"
        assert pq.read_schema(inputs_path(out)).field("person_found").type == "bool"


def test_rewrite_replaces_the_tables(tmp_path):
    inputs, handles, *_ = _inputs(tmp_path)
    out = tmp_path / "res.parquet"
    write_tables(out, inputs, handles.__getitem__)
    write_tables(out, inputs[1:2], handles.__getitem__)  # only the failed input is listed now
    assert read_table(out) == [] and len(read_table(inputs_path(out))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.parquet", "res.videos.parquet"]


def test_output_names(tmp_path):
    assert inputs_path(tmp_path / "r.parquet") == tmp_path / "r.videos.parquet"
    assert inputs_path(tmp_path / "r.csv") == tmp_path / "r.videos.csv"
    assert output_format("x.PQ") == "parquet" and output_format("x.csv") == "csv"
    with pytest.raises(UserError, match=".parquet or .csv"):
        output_format(tmp_path / "r.json")


def test_rows_follow_the_schema(tmp_path):
    with pytest.raises(ValueError, match="plan and probabilities"):
        input_row(Segment(tmp_path / "a.mkv"), bundle_id="b", backend="x")
    with pytest.raises(ValueError, match="3 probabilities for 2 windows"):
        window_columns(_plan(tmp_path / "a.mkv", 2), np.zeros(3))
