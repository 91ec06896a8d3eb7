"""Wire protocol: round trip, every validation rule, zero-copy payload, results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semiostream.bus.protocol import (
    MAX_HEADER_BYTES,
    EventResult,
    ProtocolError,
    ScoreResult,
    decode_frame,
    decode_result,
    encode_frame,
    encode_result,
)


def _frame(h=4, w=5):
    return (np.arange(h * w, dtype=np.uint16) * 997).reshape(h, w)


def test_round_trip_is_exact_and_little_endian():
    img = _frame()
    img[0, 0] = 0xABCD
    parts = encode_frame("bed-01", 7, 123_456_789, img, roi=(1, 0, 5, 4))
    assert parts[0] == b"ir/bed-01"
    assert bytes(parts[2])[:2] == b"\xcd\xab"  # little-endian on the wire
    f = decode_frame([parts[0], parts[1], bytes(parts[2])])
    assert (f.bed, f.seq, f.t_ns, f.roi) == ("bed-01", 7, 123_456_789, (1, 0, 5, 4))
    np.testing.assert_array_equal(f.image, img)
    assert not f.image.flags.writeable  # a view of the received buffer, not a copy


def _with_header(**changes):
    parts = encode_frame("bed-01", 1, 2, _frame())
    header = json.loads(parts[1])
    for k, v in changes.items():
        if v is ...:
            header.pop(k)
        else:
            header[k] = v
    return [parts[0], json.dumps(header).encode(), bytes(parts[2])]


@pytest.mark.parametrize("changes,reason", [
    ({"v": 2}, "version"),
    ({"v": ...}, "version"),
    ({"bed": "bed 01"}, "bed"),
    ({"bed": "x" * 65}, "bed"),
    ({"bed": "bed-02"}, "topic"),
    ({"seq": -1}, "seq"),
    ({"seq": 1.5}, "seq"),
    ({"seq": True}, "seq"),
    ({"t_ns": "now"}, "t_ns"),
    ({"h": 0}, "h"),
    ({"w": 100000}, "w"),
    ({"h": 5}, "payload_size"),
    ({"dtype": ">u2"}, "dtype"),
    ({"dtype": "uint8"}, "dtype"),
    ({"roi": [0, 0, 6, 4]}, "roi"),
    ({"roi": [3, 0, 2, 4]}, "roi"),
    ({"roi": "all"}, "roi"),
    ({"extra": 1}, "fields"),
])
def test_each_rule_has_its_reason(changes, reason):
    with pytest.raises(ProtocolError) as e:
        decode_frame(_with_header(**changes))
    assert e.value.reason == reason


def test_structural_errors():
    parts = encode_frame("b", 0, 0, _frame())
    with pytest.raises(ProtocolError, match="parts"):
        decode_frame(parts[:2])
    with pytest.raises(ProtocolError) as e:
        decode_frame([parts[0], b"{not json", bytes(parts[2])])
    assert e.value.reason == "header_json"
    with pytest.raises(ProtocolError) as e:
        decode_frame([parts[0], b"[1, 2]", bytes(parts[2])])
    assert e.value.reason == "header_json"
    with pytest.raises(ProtocolError) as e:
        decode_frame([parts[0], b" " * (MAX_HEADER_BYTES + 1), bytes(parts[2])])
    assert e.value.reason == "header_size"
    with pytest.raises(ProtocolError) as e:
        decode_frame([parts[0], b"\xff\xfe", bytes(parts[2])])
    assert e.value.reason == "header_json"


def test_encoder_refuses_non_uint16():
    with pytest.raises(ValueError, match="uint16"):
        encode_frame("b", 0, 0, np.zeros((4, 4), np.float32))
    with pytest.raises(ProtocolError):
        encode_frame("bad bed", 0, 0, _frame())


def test_results_round_trip():
    r = ScoreResult("bed-01", 0, 59, 10, 20, 0.73, "TLE", "abc", 412.5, "bed-01-ev")
    assert decode_result(encode_result(r)) == r
    e = EventResult("bed-01", "ev", 1, 2, 3, 0.4, "FLE", "abc")
    parts = encode_result(e)
    assert parts[0] == b"event/bed-01"
    assert decode_result(parts) == e
    with pytest.raises(ProtocolError):
        decode_result([b"score/x", b"{}"])
