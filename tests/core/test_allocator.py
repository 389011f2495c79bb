# SPDX-License-Identifier: GPL-2.0-or-later
"""core.allocator: on glibc, large arrays come from the heap instead of memory maps of their own (by glibc's own
account, in a child process, so that this one keeps its allocator); elsewhere nothing changes; the command lines
tune their process."""
import ctypes
import json
import os
import subprocess
import sys

import pytest

from cofusion.core import allocator, interrupts

# glibc's account of its memory (mallinfo2) exists from glibc 2.33 on
with_account = pytest.mark.skipif(not allocator.is_glibc() or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                                  reason="needs glibc >= 2.33 (mallinfo2)")

# Allocates and frees a 64 MB tensor 5 times (PyTorch's CPU allocator, as the network's activations), and prints,
# while each is held, glibc's own account of its memory (mallinfo2: bytes in memory maps of their own, bytes of
# the heap), and the allocator variables of the environment.
_ACCOUNT = """
import ctypes, json, os, sys
import torch
from cofusion.core.allocator import ENVIRONMENT, reuse_large_allocations
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
tuned = reuse_large_allocations() if sys.argv[1] == "tuned" else False
held = []
for _ in range(5):
    tensor = torch.ones(16 << 20, dtype=torch.float32)
    info = mallinfo2()
    held.append({"mapped": info.hblkhd, "heap": info.arena})
    del tensor
print(json.dumps({"tuned": tuned, "held": held, "env": {name: os.environ.get(name) for name in ENVIRONMENT}}))
"""
LARGE = 64 << 20


def _account(mode: str) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in allocator.ENVIRONMENT}
    done = subprocess.run([sys.executable, "-c", _ACCOUNT, mode], capture_output=True, text=True, check=True,
                          env=env)
    return json.loads(done.stdout.splitlines()[-1])


@with_account
def test_large_arrays_come_from_the_heap_not_from_maps_of_their_own():
    plain, tuned = _account("plain"), _account("tuned")
    assert not plain["tuned"] and all(held["mapped"] >= LARGE for held in plain["held"]), plain  # a map each time
    assert tuned["tuned"] and all(held["mapped"] < LARGE <= held["heap"] for held in tuned["held"]), tuned
    assert plain["env"] == dict.fromkeys(allocator.ENVIRONMENT) and tuned["env"] == allocator.ENVIRONMENT


def test_other_c_libraries_are_left_as_they_are(monkeypatch):
    def no_such_name(_name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "confstr", no_such_name)  # macOS and musl have confstr, not this name
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert not allocator.is_glibc() and allocator.reuse_large_allocations() is False
    assert not any(name in os.environ for name in allocator.ENVIRONMENT)
    monkeypatch.delattr(os, "confstr")  # Windows has no confstr
    assert not allocator.is_glibc()


def test_the_command_lines_tune_their_process(monkeypatch):
    calls = []
    monkeypatch.setattr(interrupts, "reuse_large_allocations", lambda: calls.append("tuned"))
    assert interrupts.run_command(lambda: lambda interrupts: 0, "nothing was written") == 0
    assert calls == ["tuned"]
