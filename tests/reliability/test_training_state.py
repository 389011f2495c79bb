# SPDX-License-Identifier: GPL-2.0-or-later
"""Training state: two runs writing one model, a stale lock of a killed run, resume states that are unusable, and
the rule that an existing model at --out is replaced only when a run ends or is canceled (never by a run that is
killed, interrupted or fails), the best checkpoint so far waiting in ``NAME.partial.safetensors`` until then."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.errors import Canceled, CheckpointError, OutputError
from cofusion.training import cli as training_cli
from cofusion.training import trainer
from cofusion.training.api import train_reference
from cofusion.training.trainer import TrainSettings, lock_path, partial_path, resume_path

from .conftest import save_tiny_model

SRF = "sentinel2a:B2,B3,B4"
WAVELENGTHS = tuple(float(w) for w in np.linspace(420, 880, 8))


def _settings(**kw) -> TrainSettings:
    return TrainSettings(**{"iterations": 4, "batch_size": 2, "patch": 16, "validate_every": 2, "warmup": 2,
                            "device": "cpu", "model": {"width": 8, "top_k": 2}, **kw})


@pytest.fixture
def reference(make_raster) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64
    data = 0.1 + rng.random((8, 64, 64)) * 0.01
    for cy, cx in ((0.3, 0.6), (0.7, 0.2)):
        data = data + np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.03) * rng.uniform(0.1, 0.5, (8, 1, 1))
    return make_raster(data=data.astype(np.float32), wavelengths_nm=WAVELENGTHS, name="reference.tif")


def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------------------ locking

#: A run of 40 steps slowed to 0.25 s a step (its progress callback sleeps), so that it is still running when the
#: test has seen its first resume state (step 2), tried a second run, and killed it.
LONG_RUN = """
import sys, time
from cofusion.training.api import train_reference
from cofusion.training.trainer import TrainSettings

settings = TrainSettings(iterations=40, batch_size=2, patch=16, validate_every=2, warmup=2, device="cpu",
                         model={"width": 8, "top_k": 2})
train_reference([sys.argv[1]], "sentinel2a:B2,B3,B4", 4, sys.argv[2], settings=settings,
                progress=lambda fraction, message: time.sleep(0.25))
"""


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_a_second_run_is_refused_a_killed_run_leaves_the_old_model_and_the_next_run_takes_over(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    good = save_tiny_model(out)  # an existing good model at --out
    earlier = good.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", LONG_RUN, str(reference), str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: resume_path(out).exists() or child.poll() is not None, 180, "the first resume state")
        assert child.poll() is None, child.communicate()[1][-2000:]
        # a second run writing the same model: refused at once, naming the first
        with pytest.raises(OutputError) as caught:
            train_reference([reference], SRF, 4, out, settings=_settings())
        message = _one_line(caught.value)
        assert f"process {child.pid}" in message and str(lock_path(out)) in message, message
        assert "delete" in message and "if no other training runs" in message, message
        assert child.poll() is None  # the first run goes on
    finally:
        child.kill()  # SIGKILL: no cleanup; the lock, the resume state and the partial checkpoint stay
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert out.read_bytes() == earlier  # the killed run never touched the existing model
    assert lock_path(out).exists() and resume_path(out).exists()
    best = load_checkpoint(partial_path(out))  # the best so far, whole
    assert best.card.config.hsi_bands == 8
    # the next run (the same settings) takes over the dead process's lock and resumes where it stopped
    step = torch.load(resume_path(out), weights_only=True)["step"]
    assert 2 <= step < 40
    result = train_reference([reference], SRF, 4, out, settings=_settings(iterations=40))
    assert result.steps == 40
    rows = out.with_name("m.log.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(41))  # resumed: no step twice, none lost
    assert load_checkpoint(out).card.config.hsi_bands == 8 and out.read_bytes() != earlier
    assert not lock_path(out).exists() and not partial_path(out).exists() and not resume_path(out).exists()


def test_a_lock_held_by_a_live_process_is_refused_with_the_fix(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(out).write_text(f'{{"pid": {sleeper.pid}, "host": "{os.uname().nodename}", "started": "then", '
                                  '"command": "python -m cofusion.training pair ..."}')
        before = lock_path(out).read_bytes()
        code = training_cli.main(["reference", "--hsi", str(reference), "--srf", SRF, "--scale", "4", "--out",
                                  str(out), "--iterations", "2", "--device", "cpu", "--width", "8", "--patch", "16"])
        assert code == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lock_path(out).read_bytes() == before and not out.exists() and not partial_path(out).exists()


@pytest.mark.parametrize("content", ["", "not json", '{"pid": "12"}', '{"host": "x"}'],
                         ids=["empty", "garbage", "pid_a_string", "no_pid"])
def test_an_unreadable_lock_is_never_taken_over(content, reference, tmp_path):
    """An empty lock may be one another run has just created and not yet written: refused, with the fix."""
    out = tmp_path / "m.safetensors"
    lock_path(out).write_text(content)
    with pytest.raises(OutputError) as caught:
        train_reference([reference], SRF, 4, out, settings=_settings())
    message = _one_line(caught.value)
    assert "another training may be writing" in message and f"delete {lock_path(out)}" in message
    assert lock_path(out).read_text() == content


def test_where_the_os_cannot_tell_a_dead_process_the_lock_is_refused(reference, tmp_path, monkeypatch):
    """Windows' os.kill cannot probe a process: a lock is then never taken over, the message says to delete it."""
    out = tmp_path / "m.safetensors"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(out).write_text(f'{{"pid": {dead.pid}, "host": "{os.uname().nodename}"}}')
    monkeypatch.setattr(trainer, "_process_alive", lambda pid: None)
    with pytest.raises(OutputError, match="delete .* if no other training runs"):
        train_reference([reference], SRF, 4, out, settings=_settings())
    monkeypatch.undo()
    result = train_reference([reference], SRF, 4, out, settings=_settings(iterations=2))  # POSIX: taken over
    assert result.steps == 2 and not lock_path(out).exists()


def test_a_lock_of_another_host_is_never_taken_over(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    lock_path(out).write_text('{"pid": 999999999, "host": "another-host"}')
    with pytest.raises(OutputError, match="process 999999999 on another-host"):
        train_reference([reference], SRF, 4, out, settings=_settings())


def test_two_trainings_in_one_process_collide_too(reference, tmp_path):
    """Two QGIS tasks train in threads of one process: the second is refused while the first runs."""
    out = tmp_path / "m.safetensors"
    started, release, errors = threading.Event(), threading.Event(), []

    def first_cancel() -> bool:
        started.set()
        release.wait(60)
        return True

    def first() -> None:
        try:
            train_reference([reference], SRF, 4, out, settings=_settings(iterations=50), cancel=first_cancel)
        except Canceled:
            pass
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(120)
        with pytest.raises(OutputError, match=f"process {os.getpid()}"):
            train_reference([reference], SRF, 4, out, settings=_settings())
    finally:
        release.set()
        thread.join(120)
    assert not errors and not lock_path(out).exists()


# --------------------------------------------------------------------------------------------- the resume state


class _Exploit:
    """Unpickling this creates the marker file: proof that code from the resume state ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _past_the_first_resume_point(out: Path):
    """A cancel (or interrupt) condition: True once the run writing ``out`` has saved its first resume state (the
    trainer also asks for a cancel at each phase of its start-up, so a count of calls would stop it earlier)."""
    return lambda: resume_path(out).exists()


def _good_state(reference: Path, out: Path) -> dict:
    """A real resume state: a run canceled after its first resume point."""
    with pytest.raises(Canceled):
        train_reference([reference], SRF, 4, out, settings=_settings(iterations=6),
                        cancel=_past_the_first_resume_point(out))
    return torch.load(resume_path(out), weights_only=True)


def _without(key):
    return lambda state: {k: v for k, v in state.items() if k != key}


def _with(**changes):
    return lambda state: {**state, **changes}


RESUME_CORRUPTIONS = {
    "a_list": (lambda state: [1, 2, 3], "holds a list"),
    "a_tensor": (lambda state: torch.zeros(3), "holds a Tensor"),
    "lacks_the_step": (_without("step"), "lacks step"),
    "lacks_the_model": (_without("model"), "lacks model"),
    "lacks_the_generator": (_without("generator"), "lacks generator"),
    "step_a_string": (_with(step="3"), "step of the wrong type"),
    "step_negative": (_with(step=-1), "step of the wrong type"),
    "elapsed_nan": (_with(elapsed=float("nan")), "elapsed of the wrong type"),
    "best_a_list": (_with(best=[1.0]), "best of the wrong type"),
    "band_weights_too_few": (lambda state: {**state, "band_weights": state["band_weights"][:3]},
                             "3 band weights for 8 bands"),
    "band_weights_negative": (lambda state: {**state, "band_weights": [-1.0] * 8}, "band_weights of the wrong"),
    "model_of_another_shape": (lambda state: {**state, "model": {k: torch.zeros(2) for k in state["model"]}},
                               "size mismatch|unusable"),
    "model_missing_a_tensor": (lambda state: {**state, "model": dict(list(state["model"].items())[1:])},
                               "Missing key"),
    "optimizer_of_another_model": (lambda state: {**state, "optimizer": {"state": {}, "param_groups": []}},
                                   "unusable"),
    "averaged_missing": (_with(averaged=None), "no average of the weights"),
    "generator_of_another_size": (_with(generator=torch.zeros(7, dtype=torch.uint8)), "unusable"),
    "generator_floats": (_with(generator=torch.zeros(5056)), "generator of the wrong type"),
    "fingerprint_a_number": (_with(fingerprint=7), "fingerprint of the wrong type"),
}


@pytest.mark.parametrize("case", list(RESUME_CORRUPTIONS) + ["pickle_that_runs_code", "random_bytes", "truncated"])
def test_an_unusable_resume_state_is_refused_in_one_line_and_restart_trains_afresh(case, reference, tmp_path):
    out = tmp_path / "m.safetensors"
    state = _good_state(reference, out)
    resume = resume_path(out)
    marker = tmp_path / "code-ran.txt"
    if case == "pickle_that_runs_code":
        torch.save({**state, "step": _Exploit(marker)}, resume)
        words = "unreadable"
    elif case == "random_bytes":
        resume.write_bytes(os.urandom(4096))
        words = "unreadable"
    elif case == "truncated":
        data = resume.read_bytes()
        resume.write_bytes(data[: len(data) // 2])
        words = "unreadable"
    else:
        change, words = RESUME_CORRUPTIONS[case]
        torch.save(change(state), resume)
    model_before = out.read_bytes()
    with pytest.raises(CheckpointError) as caught:
        train_reference([reference], SRF, 4, out, settings=_settings(iterations=6))
    message = _one_line(caught.value)
    assert str(resume) in message and ("unusable" in message or "unreadable" in message), message
    assert __import__("re").search(words, message), (words, message)
    assert "delete it or pass --restart" in message
    assert not marker.exists() and out.read_bytes() == model_before and not lock_path(out).exists()
    result = train_reference([reference], SRF, 4, out, settings=_settings(iterations=6), restart=True)
    assert result.steps == 6 and not resume.exists() and not marker.exists()


def test_the_cli_says_the_resume_state_is_unusable_in_one_line(reference, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    torch.save(["not", "a", "resume", "state"], resume_path(out))  # a valid file of the wrong type
    args = ["reference", "--hsi", str(reference), "--srf", SRF, "--scale", "4", "--out", str(out), "--iterations",
            "2", "--device", "cpu", "--width", "8", "--patch", "16", "--batch", "2"]
    code = training_cli.main(args)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.lstrip("\r").startswith("[")]  # the rest: the start-up's bar
    assert code == 2 and len(errors) == 1 and "unusable" in errors[0] and "--restart" in errors[0], lines
    assert training_cli.main([*args, "--restart"]) == 0 and out.exists()


def test_a_damaged_log_does_not_stop_a_resume(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    _good_state(reference, out)
    log = out.with_name("m.log.csv")
    log.write_bytes(b"\xff\xfe garbage\n1,2\nx,y\n")
    result = train_reference([reference], SRF, 4, out, settings=_settings(iterations=6))
    assert result.steps == 6 and log.read_text().startswith("step,")


# ------------------------------------------------------------------------------------ when --out is replaced


def test_an_interrupted_run_leaves_the_existing_model_and_its_best_in_the_partial_file(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    earlier = save_tiny_model(out).read_bytes()
    past = _past_the_first_resume_point(out)

    def interrupt(fraction, message):  # Ctrl-C after the second step (past the first resume point)
        if past():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_reference([reference], SRF, 4, out, settings=_settings(iterations=8), progress=interrupt)
    assert out.read_bytes() == earlier and not lock_path(out).exists()
    assert load_checkpoint(partial_path(out)).card.provenance["steps"] in (0, 2)
    result = train_reference([reference], SRF, 4, out, settings=_settings(iterations=8))
    assert result.steps == 8 and out.read_bytes() != earlier and not partial_path(out).exists()


def test_a_canceled_run_keeps_its_best_so_far_at_out(reference, tmp_path):
    out = tmp_path / "m.safetensors"
    earlier = save_tiny_model(out).read_bytes()
    with pytest.raises(Canceled, match=f"kept at {out}"):
        train_reference([reference], SRF, 4, out, settings=_settings(iterations=8),
                        cancel=_past_the_first_resume_point(out))
    assert out.read_bytes() != earlier and load_checkpoint(out).card.config.hsi_bands == 8
    assert not partial_path(out).exists() and resume_path(out).exists() and not lock_path(out).exists()


def test_a_run_that_fails_leaves_the_existing_model(reference, tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    earlier = save_tiny_model(out).read_bytes()

    def fail(*_args, **_kwargs):
        raise OutputError("Writing the resume state failed: No space left on device. Check ... free space.")

    monkeypatch.setattr(trainer, "_save_resume", fail)
    with pytest.raises(OutputError, match="free space"):
        train_reference([reference], SRF, 4, out, settings=_settings())
    assert out.read_bytes() == earlier and partial_path(out).exists() and not lock_path(out).exists()


RESUME_DOES_NOT_FIT = """
import signal, resource, sys
from cofusion.core.errors import CoFusionError
from cofusion.training.api import train_reference
from cofusion.training.trainer import TrainSettings

settings = TrainSettings(iterations=4, batch_size=2, patch=16, validate_every=2, warmup=2, device="cpu",
                         model={"width": 8, "top_k": 2})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (160 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    train_reference([sys.argv[1]], "sentinel2a:B2,B3,B4", 4, sys.argv[2], settings=settings)
except CoFusionError as exc:
    print(type(exc).__name__, exc)
"""


def test_a_resume_state_that_does_not_fit_on_the_disk_is_an_output_error(reference, tmp_path):
    """The checkpoint (about 60 KB) fits under a 160 KiB file-size limit, the resume state (about four times it)
    does not: an OutputError with the fix, no temporary file, the existing model intact, the best in the partial
    file, and the lock gone."""
    out = tmp_path / "m.safetensors"
    earlier = save_tiny_model(out).read_bytes()
    done = subprocess.run([sys.executable, "-c", RESUME_DOES_NOT_FIT, str(reference), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.startswith("OutputError Writing the resume state") and "free space" in done.stdout, done.stdout
    assert out.read_bytes() == earlier and load_checkpoint(partial_path(out)).card.config.hsi_bands == 8
    assert not lock_path(out).exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
