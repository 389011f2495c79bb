# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the network runs and in which precision: the one switch for devices, autocast and CPU threads.

A user names a device ('auto', 'cpu', 'cuda', 'cuda:N'; 'auto' is the first CUDA GPU when PyTorch sees one, else
the CPU). :func:`compute_plan` turns the name into a :class:`ComputePlan`: the ``torch.device`` and the precision
of inference and of training there, each with its context manager. The predictor (core/inference.py) and the
trainer (training/trainer.py) take their device and precision from a plan and from nowhere else.

Precisions, and why:

- CPU, inference and training: float32 (autocast off). CPU float16 is emulated (the bundled model on the bundled
  sample: 0.35 s in float16 autocast, 0.066 s in float32, 2 threads) and CPU bfloat16 is slower than float32 on
  CPUs without AVX512-BF16 or AMX.
- CUDA, inference: float16 autocast. It rounds to 2^-11 where bfloat16 rounds to 2^-8, and the network sees
  normalised inputs, far from float16's 65504 limit: the bundled model's output moves by 5.5e-4 of its range
  (tests/core/test_inference.py). The parts that need float32 (the GSA base's regression, core/injection.py) turn
  autocast off.
- CUDA, training: bfloat16 autocast on GPUs with native bfloat16 (compute capability 8.0 and later: A100, H100,
  H200, RTX 30xx and later), else float32. Not float16 with a GradScaler: float16 gradients of the zero-initialised
  head underflow without loss scaling, and a scaler skips the steps whose gradients overflow, which changes the
  step sequence a resume file and the iteration budget count on; bfloat16 has float32's exponent range and needs
  neither. The loss itself is computed in float32 (training.trainer._loss).
- ``COFUSION_FP32=1`` in the environment runs CUDA in float32 too (autocast off), to tell a precision problem from
  a bug. PyTorch's default lets cuDNN use TF32 in convolutions even then (float32 range, 10-bit mantissa).

Importing this module needs no PyTorch (core.service and the Processing algorithms list :data:`DEVICES` before the
runtime dependencies are installed); the functions that need it import it.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

#: The device names a user may give, besides "cuda:N" (N a GPU's index): the first CUDA GPU when there is one
#: else the CPU, the CPU, the first CUDA GPU.
DEVICES = ("auto", "cpu", "cuda")
#: Environment variable: set to 1 to run CUDA in float32 (no autocast), for debugging.
FP32_VARIABLE = "COFUSION_FP32"
#: The compute capability from which a CUDA GPU runs bfloat16 natively (Ampere).
BF16_CAPABILITY = (8, 0)


def is_device_name(name: object) -> bool:
    """True for one of :data:`DEVICES` or 'cuda:N' with N a whole number; no GPU is looked for."""
    return isinstance(name, str) and (name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit()))


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU (False where PyTorch cannot be imported)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_device(name: str = "auto") -> torch.device:
    """The torch.device of a device name: 'auto' -> CUDA when available, else the CPU. InputError with the fix for
    a name that is not a device, 'cuda' without a GPU and 'cuda:N' past the GPUs PyTorch sees."""
    import torch

    if not is_device_name(name):
        raise InputError(f"device '{name}' is not one of {DEVICES} (or 'cuda:N').")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{name}' was asked for but PyTorch sees no CUDA GPU here; use device 'auto' or "
                         "'cpu' (or install a CUDA build of PyTorch).")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InputError(f"device '{name}' was asked for but PyTorch sees {count} CUDA GPU"
                         f"{'' if count == 1 else 's'} (cuda:0 to cuda:{count - 1}); use one of those or 'cuda'.")
    return device


def available_cpus() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (Linux), else every core."""
    if hasattr(os, "sched_getaffinity"):  # absent on Windows and macOS
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use every core this process may run on (or ``threads``) for intra-op parallelism; returns the count."""
    import torch

    count = threads or available_cpus()
    torch.set_num_threads(count)
    return count


@dataclass(frozen=True)
class ComputePlan:
    """A device and the precisions the network runs in there (see the module's docstring for the choices).

    inference_dtype, training_dtype: the dtype autocast runs matrix products and convolutions in; float32 means
    autocast off (everything in float32).
    """

    device: torch.device
    inference_dtype: torch.dtype
    training_dtype: torch.dtype

    def inference_autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward of inference runs in (autocast on the plan's device, or off)."""
        return self._autocast(self.inference_dtype)

    def training_autocast(self) -> contextlib.AbstractContextManager:
        """The context a training step's forward runs in (autocast on the plan's device, or off); the backward runs
        outside it, as PyTorch's autocast asks. No gradient scaling is needed: training never runs float16."""
        return self._autocast(self.training_dtype)

    def describe(self) -> str:
        """One line for logs: 'cuda:0 (NVIDIA H200), inference float16, training bfloat16'."""
        import torch

        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        return f"{where}, inference {_name(self.inference_dtype)}, training {_name(self.training_dtype)}"

    def _autocast(self, dtype: torch.dtype) -> contextlib.AbstractContextManager:
        import torch

        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)


def compute_plan(name: str = "auto") -> ComputePlan:
    """The plan of a device name (see :func:`resolve_device` for the names and the errors)."""
    import torch

    device = resolve_device(name)
    if device.type != "cuda" or os.environ.get(FP32_VARIABLE, "") not in ("", "0"):
        return ComputePlan(device, torch.float32, torch.float32)
    bf16 = torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    return ComputePlan(device, torch.float16, torch.bfloat16 if bf16 else torch.float32)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
