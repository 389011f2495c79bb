# SPDX-License-Identifier: GPL-2.0-or-later
"""core.device: device names, the refusals, the precision plan of each device (the CUDA branch with a pretend GPU),
the plan's autocast contexts and the CPU threads; importing it needs no PyTorch."""
import subprocess
import sys

import pytest
import torch

from cofusion.core.device import (
    FP32_VARIABLE,
    ComputePlan,
    available_cpus,
    compute_plan,
    configure_cpu_threads,
    is_device_name,
    resolve_device,
)
from cofusion.core.errors import InputError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def pretend_gpu(monkeypatch):
    """PyTorch 'sees' one CUDA GPU of compute capability 9.0 (an H100/H200); the capability can be changed with
    ``pretend_gpu(capability)``. Nothing runs on it: plans only."""
    monkeypatch.delenv(FP32_VARIABLE, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

    def set_capability(capability):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)

    set_capability((9, 0))
    return set_capability


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names(name):
    assert is_device_name(name)


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:0 ", "", None, 0])
def test_other_names_are_refused_in_one_line_naming_the_choices(name):
    assert not is_device_name(name)
    with pytest.raises(InputError, match=r"^device '.*' is not one of \('auto', 'cpu', 'cuda'\) \(or 'cuda:N'\)\.$"):
        compute_plan(name)


def test_auto_is_the_cpu_without_a_gpu_and_the_gpu_with_one(no_gpu, monkeypatch):
    assert compute_plan("auto").device == torch.device("cpu")
    assert compute_plan().device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert compute_plan("auto").device == torch.device("cuda")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_is_refused_with_the_fix(no_gpu, name):
    with pytest.raises(InputError) as error:
        compute_plan(name)
    assert str(error.value) == (f"device '{name}' was asked for but PyTorch sees no CUDA GPU here; use device 'auto' "
                                "or 'cpu' (or install a CUDA build of PyTorch).")


def test_a_gpu_index_past_the_gpus_is_refused_naming_them(pretend_gpu):
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(InputError, match=r"^device 'cuda:1' was asked for but PyTorch sees 1 CUDA GPU \(cuda:0 to "
                                         r"cuda:0\); use one of those or 'cuda'\.$"):
        compute_plan("cuda:1")


def test_the_cpu_runs_float32_throughout():
    plan = compute_plan("cpu")
    assert plan == ComputePlan(torch.device("cpu"), torch.float32, torch.float32)
    assert plan.describe() == "cpu, inference float32, training float32"


def test_a_gpu_infers_in_float16_and_trains_in_bfloat16_from_ampere_on_else_float32(pretend_gpu):
    assert compute_plan("cuda") == ComputePlan(torch.device("cuda"), torch.float16, torch.bfloat16)
    assert compute_plan("cuda:0") == ComputePlan(torch.device("cuda:0"), torch.float16, torch.bfloat16)
    pretend_gpu((8, 0))  # A100
    assert compute_plan("cuda").training_dtype == torch.bfloat16
    pretend_gpu((7, 5))  # T4, RTX 20xx: no native bfloat16, and float16 training would need loss scaling
    assert compute_plan("cuda") == ComputePlan(torch.device("cuda"), torch.float16, torch.float32)


@pytest.mark.parametrize("value, fp32", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_the_fp32_variable_turns_autocast_off_on_a_gpu(pretend_gpu, monkeypatch, value, fp32):
    monkeypatch.setenv(FP32_VARIABLE, value)
    plan = compute_plan("cuda")
    assert (plan.inference_dtype, plan.training_dtype) == ((torch.float32,) * 2 if fp32 else
                                                           (torch.float16, torch.bfloat16))
    assert compute_plan("cpu").inference_dtype == torch.float32


def test_a_float32_context_is_float32_even_inside_another_autocast():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    plan = compute_plan("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16  # the outer autocast is on
        with plan.inference_autocast():
            assert not torch.is_autocast_enabled("cpu")
            assert (a @ b).dtype == torch.float32
        with plan.training_autocast():
            assert (a @ b).dtype == torch.float32


def test_a_reduced_precision_context_autocasts_on_the_plans_device():
    # The CUDA plans' contexts are the same code with device type 'cuda'; on the CPU bfloat16 autocast runs here.
    plan = ComputePlan(torch.device("cpu"), torch.bfloat16, torch.bfloat16)
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with plan.inference_autocast():
        assert (a @ b).dtype == torch.bfloat16
    with plan.training_autocast():
        assert (a @ b).dtype == torch.bfloat16
    assert (a @ b).dtype == torch.float32


def test_cpu_threads_are_every_core_available_or_the_count_given():
    before = torch.get_num_threads()
    try:
        assert configure_cpu_threads(1) == 1 == torch.get_num_threads()
        assert configure_cpu_threads() == available_cpus() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_importing_the_switch_needs_no_pytorch():
    # core.service lists DEVICES for QGIS before PyTorch is installed; without PyTorch there is no GPU.
    code = ("import sys; sys.modules['torch'] = None; import cofusion.core.device as d; "
            "print(d.DEVICES, d.is_device_name('cuda:1'), d.cuda_available())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["('auto',", "'cpu',", "'cuda')", "True", "False"]
