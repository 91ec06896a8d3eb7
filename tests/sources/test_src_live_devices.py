"""Azure Kinect (pyk4a) and Orbbec Femto (pyorbbecsdk) live sources. They need their SDK and a device:
without the SDK, opening says how to install it; without a device, it says none is connected; with one,
16-bit IR frames arrive. Skipped with the reason where the SDK or the device is absent."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.sources.cameras import open_live
from semiostream.sources.live_k4a import load_pyk4a
from semiostream.sources.live_orbbec import load_orbbec
from semiostream.sources.source import SourceError

KINDS = {"k4a": load_pyk4a, "orbbec": load_orbbec}


def _sdk(kind: str):
    try:
        return KINDS[kind]()
    except SourceError as e:
        return e


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_without_the_sdk_the_error_says_how_to_install_it(kind):
    sdk = _sdk(kind)
    if not isinstance(sdk, SourceError):
        pytest.skip(f"the {kind} SDK is installed here")
    with pytest.raises(SourceError, match=rf'pip install "\.\[{kind}\]"'):
        open_live(f"{kind}://0")


def _count(kind: str, sdk) -> int:
    if kind == "k4a":
        return sdk.connected_device_count()
    return sdk.Context().query_devices().get_count()


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("stream", ["ir", "depth"])
def test_device_streams_16_bit_frames_or_says_none_is_connected(kind, stream):
    sdk = _sdk(kind)
    if isinstance(sdk, SourceError):
        pytest.skip(f"needs the {kind} SDK: {sdk}")
    src = open_live(f"{kind}://0", stream=stream)
    if _count(kind, sdk) == 0:
        with pytest.raises(SourceError, match="connected"):
            next(src.frames())
        pytest.skip(f"no {kind} device connected (the no-device message was checked)")
    frames = src.frames()
    try:
        got = [next(frames) for _ in range(5)]
    finally:
        frames.close()
    assert all(f.image.dtype == np.uint16 and f.image.ndim == 2 for f in got)
    assert src.bit_depth == 16 and [f.seq for f in got] == sorted({f.seq for f in got})


def test_device_addresses_are_checked():
    with pytest.raises(SourceError, match="not an index"):
        open_live("k4a://front")
    with pytest.raises(SourceError, match="takes no credentials"):
        open_live("genicam://Fake_1", listen=True)
    with pytest.raises(SourceError, match="one picture"):
        open_live("rtsp://cam/s", stream="depth")
