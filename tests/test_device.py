"""The one device vocabulary: parsing every spelling, and each library's form of the same device."""

from __future__ import annotations

import pytest
import torch

from semiostream.core.device import Device, DeviceError, fp32_exact


@pytest.mark.parametrize(
    "spelling, kind, index",
    [("cpu", "cpu", 0), ("CPU", "cpu", 0), ("cuda:1", "cuda", 1), ("gpu:2", "cuda", 2), (" cuda:0 ", "cuda", 0),
     (3, "cuda", 3), (torch.device("cuda", 1), "cuda", 1), (torch.device("cpu"), "cpu", 0),
     (Device("cuda", 4), "cuda", 4)],
)
def test_every_spelling_names_one_device(spelling, kind, index):
    d = Device.parse(spelling)
    assert (d.kind, d.index) == (kind, index)
    assert Device.parse(str(d)) == d  # str() round-trips


def test_unindexed_cuda_is_the_current_device():
    want = torch.cuda.current_device() if torch.cuda.is_available() else 0
    assert Device.parse("cuda") == Device.parse("gpu") == Device("cuda", want)


@pytest.mark.parametrize(
    "bad, msg",
    [("tpu", "unknown device 'tpu'"), ("cuda:x", "must be a number"), ("cpu:1", "the CPU has no index"),
     (True, "not a device"), (1.5, "not a device"), (-1, "must be an integer >= 0")],
)
def test_bad_spellings_say_what_to_write(bad, msg):
    with pytest.raises(DeviceError, match=msg):
        Device.parse(bad)


def test_each_library_gets_its_own_spelling():
    gpu1 = Device("cuda", 1)
    assert gpu1.torch == torch.device("cuda", 1) and gpu1.type == "cuda" and str(gpu1) == "cuda:1"
    assert (gpu1.dali_device, gpu1.dali_device_id, gpu1.dali_decoder_device) == ("gpu", 1, "mixed")
    cpu = Device.cpu()
    assert (cpu.dali_device, cpu.dali_device_id, cpu.dali_decoder_device) == ("cpu", None, "cpu")
    assert cpu.torch == torch.device("cpu") and cpu.ort_providers() == ["CPUExecutionProvider"]
    (name, opts), fallback = gpu1.ort_providers()
    assert name == "CUDAExecutionProvider" and fallback == "CPUExecutionProvider"
    assert opts == {"device_id": 1, "use_tf32": 0}  # fp32 stays fp32 unless asked
    assert gpu1.ort_providers(tf32=True)[0][1]["use_tf32"] == 1
    (_, with_stream), _ = gpu1.ort_providers(stream=0xBEEF)
    assert with_stream["has_user_compute_stream"] == 1 and with_stream["user_compute_stream"] == str(0xBEEF)


def test_devices_are_values():
    assert Device.parse("cuda:1") == Device("cuda", 1) and len({Device.cpu(), Device.parse("cpu")}) == 1
    with pytest.raises(DeviceError, match="kind 'gpu' is not one of"):
        Device("gpu", 0)  # DALI's word is accepted by parse(), never stored


def test_missing_gpu_is_named():
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        with pytest.raises(DeviceError, match=f"has {n} CUDA device"):
            Device("cuda", n).check_available()
    else:
        with pytest.raises(DeviceError, match="torch sees no CUDA GPU"):
            Device("cuda", 0).check_available()
    assert Device.cpu().check_available() == Device.cpu()


def test_fp32_exact_turns_tf32_off_and_restores_it_when_the_last_block_leaves():
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with fp32_exact():
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
            with fp32_exact():
                pass
            assert not torch.backends.cudnn.allow_tf32  # the inner block leaving does not restore
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_importing_the_vocabulary_loads_no_gpu_library():
    import subprocess
    import sys

    code = ("import sys, semiostream.core.device; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorrt', 'zmq') or m.startswith('nvidia.dali')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
