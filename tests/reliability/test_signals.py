# SPDX-License-Identifier: GPL-2.0-or-later
"""One signal policy for every command (core.interrupts): SIGINT, SIGTERM and SIGHUP at any moment of a run, once or
twice, end it with 128 + the signal's number, nothing at the target (an earlier output intact) and no stray file.

Each case runs ``python -m cofusion`` (or ``cofusion.training``) in a child process, through the real ``__main__``,
with a stand-in model that sends the signal to its own process at a chosen moment, so the moment is exact."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cofusion.core.interrupts import SIGNALS, Interrupts
from cofusion.core.raster import read_raster

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the child processes signal themselves (POSIX)")

HSI, MSI, SCALE = 5, 3, 2
TILE = 8  # HR pixels; the scene has 4 x 3 tiles without overlap
POSIX_SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]

# The child: ``service.load_predictor`` is replaced before ``__main__`` runs, so the command line,
# its signal handling and the engine are the real ones. MOMENTS: "start-up" signals while the model loads, "batch:N"
# while predicting batch N (1-based), "twice:N" signals twice during batch N.
CHILD = textwrap.dedent("""
    import json, os, runpy, signal, sys
    import numpy as np
    from cofusion.core import service

    case = json.loads(sys.argv[1])
    signum, moment = case["signal"], case["moment"]

    class Stand_in:
        scale, hsi_bands, msi_bands, align = 2, 5, 3, 2
        hsi_fill, msi_fill = np.zeros(5, np.float32), np.zeros(3, np.float32)
        calls = 0

        def __call__(self, lr, hr):
            Stand_in.calls += 1
            kind, _, at = moment.partition(":")
            if kind in ("batch", "twice") and Stand_in.calls == int(at):
                os.kill(os.getpid(), signum)
                if kind == "twice":
                    os.kill(os.getpid(), signum)
            return lr.repeat(2, axis=2).repeat(2, axis=3)

    def load(_model, _device, _threads=None):
        if moment == "start-up":
            os.kill(os.getpid(), signum)
        return Stand_in()

    service.load_predictor = load
    sys.argv = ["cofusion", *case["argv"]]
    try:
        runpy.run_module("cofusion", run_name="__main__", alter_sys=True)
    finally:
        sys.stderr.write(f"\\ncalls={Stand_in.calls}\\n")
""")


@pytest.fixture
def pair(make_raster, tmp_path) -> tuple[Path, Path, Path]:
    """LRHSI 5 bands 12 x 16 at 20 m, HRMSI 3 bands 24 x 32 at 10 m, an output folder of its own with an
    earlier output in it."""
    lr = make_raster(HSI, 12, 16, name="lr.tif", wavelengths_nm=[450, 550, 650, 750, 850],
                     geotransform=(500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))
    hr = make_raster(MSI, 24, 32, name="hr.tif", geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    earlier = make_raster(1, 4, 4, name="out/fused.tif", data=np.full((1, 4, 4), 7.0, np.float32))
    return lr, hr, earlier


def _fuse(pair, signum: int, moment: str, batch: int = 1) -> subprocess.CompletedProcess:
    lr, hr, out = pair
    argv = ["fuse", "--lrhsi", str(lr), "--hrmsi", str(hr), "--model", "stand-in.safetensors", "--out", str(out),
            "--tile", str(TILE), "--overlap", "0", "--batch", str(batch), "-q"]
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps({"signal": int(signum), "moment": moment,
                                                                     "argv": argv})],
                          capture_output=True, text=True, timeout=120)


def _calls(result: subprocess.CompletedProcess) -> int:
    return int(result.stderr.rsplit("calls=", 1)[1].split()[0])


def _assert_nothing_changed(pair) -> None:
    out = pair[2]
    assert sorted(p.name for p in out.parent.iterdir()) == ["fused.tif"], "a stray file or a new output"
    np.testing.assert_array_equal(read_raster(out), np.full((1, 4, 4), 7.0, np.float32))


@pytest.mark.parametrize("signum", POSIX_SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("moment", ["start-up", "batch:1", "batch:6", "batch:12"])
def test_a_signal_stops_the_fusion_with_its_exit_code_and_leaves_the_earlier_output(pair, signum, moment):
    """batch:12 is the last batch: the request must still win over the finished file."""
    result = _fuse(pair, signum, moment)
    assert result.returncode == 128 + signum, result.stderr
    _assert_nothing_changed(pair)
    assert "Traceback" not in result.stderr
    assert "canceled" in result.stderr
    if moment.startswith("batch"):
        assert _calls(result) == int(moment.split(":")[1])  # stopped after the batch in progress
    else:
        assert _calls(result) == 0


@pytest.mark.parametrize("signum", POSIX_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_second_signal_stops_at_once_and_still_leaves_nothing(pair, signum):
    result = _fuse(pair, signum, "twice:3", batch=2)
    assert result.returncode == 128 + signum, result.stderr
    _assert_nothing_changed(pair)
    assert "Traceback" not in result.stderr and "interrupted" in result.stderr
    assert _calls(result) == 3


def test_without_a_signal_the_same_run_replaces_the_output(pair):
    """The control: the cases above fail for the signal, not for the set-up."""
    result = _fuse(pair, signal.SIGTERM, "never")
    assert result.returncode == 0, result.stderr
    assert _calls(result) == 12
    assert read_raster(pair[2]).shape == (HSI, 24, 32)
    assert sorted(p.name for p in pair[2].parent.iterdir()) == ["fused.tif"]


def test_the_handlers_are_restored_and_only_installed_in_the_main_thread():
    import threading

    before = {s: signal.getsignal(s) for s in SIGNALS}
    with Interrupts() as interrupts:
        assert all(signal.getsignal(s) == interrupts._handle for s in SIGNALS)
    assert {s: signal.getsignal(s) for s in SIGNALS} == before
    seen = []

    def in_a_thread() -> None:
        with Interrupts():
            seen.append({s: signal.getsignal(s) for s in SIGNALS})

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == [before]


def test_the_first_signal_is_a_request_and_the_second_interrupts(capsys):
    with Interrupts() as interrupts:
        assert not interrupts() and interrupts.exit_code == 130
        signal.raise_signal(signal.SIGTERM)
        assert interrupts() and interrupts.exit_code == 143
        assert "SIGTERM again to stop at once" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            interrupts.stop_if_requested()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert interrupts.exit_code == 143  # the first signal names the code


TRAIN_CHILD = textwrap.dedent("""
    import json, os, runpy, signal, sys
    from cofusion.training import trainer

    case = json.loads(sys.argv[1])
    original = trainer._loss
    steps = []

    def loss(*args, **kwargs):
        steps.append(1)
        if len(steps) == case["at_step"]:
            os.kill(os.getpid(), case["signal"])
        return original(*args, **kwargs)

    trainer._loss = loss
    sys.argv = ["cofusion.training", *case["argv"]]
    try:
        runpy.run_module("cofusion.training", run_name="__main__", alter_sys=True)
    finally:
        sys.stderr.write(f"\\nsteps={len(steps)}\\n")
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_signal_stops_training_before_its_next_step_and_keeps_the_earlier_model(make_raster, tmp_path, signum):
    from cofusion.core.checkpoint import read_card

    from .conftest import save_tiny_model

    reference = make_raster(HSI, 64, 64, name="ref.tif", wavelengths_nm=[450, 550, 650, 750, 850])
    out = save_tiny_model(tmp_path / "model.safetensors")
    before = out.read_bytes()
    argv = ["reference", "--hsi", str(reference), "--srf", "rgb", "--scale", "2", "--out", str(out),
            "--iterations", "40", "--patch", "32", "--batch", "2", "--width", "8", "--validate-every", "5"]
    result = subprocess.run([sys.executable, "-c", TRAIN_CHILD,
                             json.dumps({"signal": int(signum), "at_step": 7, "argv": argv})],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 128 + signum, result.stderr
    assert "Traceback" not in result.stderr and "rerun the same command to resume" in result.stderr
    assert int(result.stderr.rsplit("steps=", 1)[1].split()[0]) == 7  # the step in progress ended, no other began
    assert out.read_bytes() == before  # the earlier model is intact
    assert read_card(out).config.width == 8
    assert not (tmp_path / "model.safetensors.lock").exists()
