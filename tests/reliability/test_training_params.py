# SPDX-License-Identifier: GPL-2.0-or-later
"""Training parameters, validated once (TrainSettings) and refused before anything runs, the same way in the API,
the `python -m cofusion.training` CLI and the Processing algorithm `cofusion:train` (whose checkParameterValues
refuses in the dialog before Run); and a model that does not fit on the disk.

Bad settings are given with rasters that do not exist: a refusal that names the setting proves that nothing was
read. Every refusal is one line, names the setting's option, and leaves the output folder empty.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cofusion.core.errors import InputError
from cofusion.training import cli as training_cli
from cofusion.training.trainer import TrainSettings

from .conftest import tree

#: (CLI arguments, the TrainSettings keywords they make, words the message must hold).
BAD_SETTINGS = {
    "iterations_0": (["--iterations", "0"], {"iterations": 0}, ("iterations 0", "--iterations", "at least 1")),
    "iterations_negative": (["--iterations", "-3"], {"iterations": -3}, ("iterations -3", "at least 1")),
    "minutes_0": (["--minutes", "0"], {"minutes": 0.0}, ("minutes 0", "--minutes", r"\(0, ")),
    "minutes_negative": (["--minutes", "-1"], {"minutes": -1.0}, ("minutes -1", "above 0")),
    "minutes_nan": (["--minutes", "nan"], {"minutes": float("nan")}, ("minutes nan", "finite")),
    "minutes_with_iterations_0": (["--iterations", "0", "--minutes", "5"], {"iterations": 0, "minutes": 5.0},
                                  ("iterations 0",)),
    "lr_negative": (["--lr", "-1"], {"learning_rate": -1.0}, ("learning_rate -1", "--lr", "e.g. 1e-3")),
    "lr_zero": (["--lr", "0"], {"learning_rate": 0.0}, ("learning_rate 0", r"\(0, 1\]")),
    "lr_inf": (["--lr", "inf"], {"learning_rate": float("inf")}, ("learning_rate inf", "finite")),
    "lr_huge": (["--lr", "50"], {"learning_rate": 50.0}, ("learning_rate 50",)),
    "batch_0": (["--batch", "0"], {"batch_size": 0}, ("batch_size 0", "--batch", "from 1 to 1024")),
    "batch_huge": (["--batch", "100000"], {"batch_size": 100000}, ("batch_size 100000",)),
    "patch_0": (["--patch", "0"], {"patch": 0}, ("patch 0", "--patch", "from 1 to 4096")),
    "patch_negative": (["--patch", "-16"], {"patch": -16}, ("patch -16",)),
    "patch_huge": (["--patch", "100000"], {"patch": 100000}, ("patch 100000",)),
    "validate_every_0": (["--validate-every", "0"], {"validate_every": 0}, ("validate_every 0",
                                                                            "--validate-every")),
    "seed_negative": (["--seed", "-1"], {"seed": -1}, ("seed -1", "--seed", "from 0 to")),
    "ema_decay_1": (["--ema-decay", "1"], {"ema_decay": 1.0}, ("ema_decay 1", r"\[0, 1\)")),
    "ema_decay_negative": (["--ema-decay", "-0.5"], {"ema_decay": -0.5}, ("ema_decay -0.5",)),
    "device_unknown": (["--device", "gpu"], {"device": "gpu"}, ("device 'gpu'", "--device", "cuda:N")),
    "blocks_negative": (["--blocks", "-1"], {"model": {"blocks_per_level": -1}},
                        ("blocks_per_level -1", "--blocks", "from 1 to 16")),
    "blocks_0": (["--blocks", "0"], {"model": {"blocks_per_level": 0}}, ("blocks_per_level 0",)),
    "blocks_10000": (["--blocks", "10000"], {"model": {"blocks_per_level": 10000}}, ("blocks_per_level 10000",)),
    "width_3": (["--width", "3"], {"model": {"width": 3}}, ("width 3", "--width", "from 8 to 1024")),
    "width_10": (["--width", "10"], {"model": {"width": 10}}, ("width 10", "multiple of 4")),
    "width_4096": (["--width", "4096"], {"model": {"width": 4096}}, ("width 4096",)),
    "width_1024_too_large": (["--width", "1024"], {"model": {"width": 1024}},
                             ("M parameters", "GiB", "smaller width")),
    "trust_clusters_negative": (["--trust-clusters", "-1"], {"model": {"domain_prototypes": -1}},
                                ("domain_prototypes -1", "--trust-clusters")),
    "consistency_steps_11": (["--consistency-steps", "11"], {"model": {"consistency_steps": 11}},
                             ("consistency_steps 11", "--consistency-steps", "from 0 to 10")),
}

#: Settings the CLI cannot give (the API's and the Processing algorithm's): keywords, words.
API_ONLY = {
    "no_budget": ({"iterations": None, "minutes": None}, ("give a training budget",)),
    "iterations_float": ({"iterations": 10.5}, ("iterations 10.5", "whole number")),
    "iterations_bool": ({"iterations": True}, ("iterations True",)),
    "batch_float": ({"batch_size": 2.0}, ("batch_size 2.0",)),
    "lr_string": ({"learning_rate": "0.001"}, ("learning_rate '0.001'", "finite number")),
    "weight_decay_negative": ({"weight_decay": -1e-4}, ("weight_decay -0.0001",)),
    "warmup_negative": ({"warmup": -1}, ("warmup -1",)),
    "clip_0": ({"clip": 0.0}, ("clip 0", r"\(0, inf\)")),
    "clip_nan": ({"clip": float("nan")}, ("clip nan",)),
    "schedule_unknown": ({"schedule": "linear"}, ("schedule 'linear'", "cosine")),
    "band_weighting_int": ({"band_weighting": 1}, ("band_weighting 1", "true or false")),
    "seed_float": ({"seed": 1.5}, ("seed 1.5",)),
    "seed_huge": ({"seed": 2**64}, ("seed 18446744073709551616",)),
    "model_not_a_dict": ({"model": ["width", 8]}, ("model settings must be a dict",)),
    "model_unknown_key": ({"model": {"widht": 64}}, ("unknown model settings", "widht")),
    "model_band_count": ({"model": {"hsi_bands": 5}}, ("unknown model settings", "come from the data")),
    "model_dropout_5": ({"model": {"dropout": 5}}, ("dropout 5",)),
    "model_wavelet_unknown": ({"model": {"wavelet": "nope"}}, ("wavelet 'nope'", "PyWavelets")),
    "model_switch_int": ({"model": {"spacam": 0}}, ("spacam 0", "true or false")),
    "model_width_float": ({"model": {"width": 64.0}}, ("width 64.0",)),
}


def _matches(message: str, words) -> bool:
    return all(re.search(word, message) for word in words)


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_trainsettings_refuses_a_bad_setting_in_one_line(case):
    _args, keywords, words = BAD_SETTINGS[case]
    with pytest.raises(InputError) as caught:
        TrainSettings(**keywords)
    assert "\n" not in str(caught.value) and _matches(str(caught.value), words), str(caught.value)


@pytest.mark.parametrize("case", list(API_ONLY))
def test_trainsettings_refuses_what_only_the_api_can_give(case):
    keywords, words = API_ONLY[case]
    with pytest.raises(InputError) as caught:
        TrainSettings(**keywords)
    assert "\n" not in str(caught.value) and _matches(str(caught.value), words), str(caught.value)


def _cli(mode: str, folder: Path, extra: list[str]) -> list[str]:
    absent = str(folder / "absent.tif")  # never read: the settings are refused first
    inputs = (["reference", "--hsi", absent, "--srf", "sentinel2a:B2,B3,B4", "--scale", "4"] if mode == "reference"
              else ["pair", "--lrhsi", absent, "--hrmsi", absent])
    return [*inputs, "--out", str(folder / "out" / "m.safetensors"), "--device", "cpu", *extra]


@pytest.mark.parametrize("mode", ["reference", "pair"])
@pytest.mark.parametrize("case", list(BAD_SETTINGS) + ["patch_not_aligned"])
def test_the_cli_refuses_before_reading_anything_in_one_line(case, mode, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    if case == "patch_not_aligned":
        if mode == "pair":
            pytest.skip("pair mode learns the scale, and so the alignment, from the rasters")
        args, words = ["--patch", "20"], ("patch 20", "multiple of the model's alignment, 16 pixels at x4", "16 or 32")
    else:
        args, _keywords, words = BAD_SETTINGS[case]
    code = training_cli.main(_cli(mode, tmp_path, args))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert _matches(lines[0], words) and "absent.tif" not in lines[0], lines[0]
    assert list((tmp_path / "out").iterdir()) == []


def test_a_good_cli_budget_is_kept():
    """--minutes alone is a time budget (no step budget); neither gives the default 2000 steps."""
    parsed = training_cli.build_parser().parse_args(["pair", "--lrhsi", "a", "--hrmsi", "b", "--out", "m.safetensors",
                                                     "--minutes", "5"])
    assert (parsed.iterations, parsed.minutes) == (None, 5.0)
    assert TrainSettings(iterations=None, minutes=5.0).iterations is None


PROCESSING_CASES = {
    # ITERATIONS 0 means "no step budget" in the dialog: with no minutes, there is no budget at all
    "no_budget": ({"ITERATIONS": 0}, ("give a training budget",)),
    "patch_not_aligned": ({"PATCH_SIZE": 20}, ("patch 20", "16 pixels at x4")),
    "patch_at_x3": ({"PATCH_SIZE": 32, "SCALE": 3}, ("patch 32", "48 pixels at x3")),
}


@pytest.mark.qgis
@pytest.mark.parametrize("case", list(PROCESSING_CASES))
def test_processing_refuses_in_check_parameter_values_with_the_clis_message(case, run, make_raster, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

    changes, words = PROCESSING_CASES[case]
    (tmp_path / "out").mkdir()
    reference = make_raster(bands=8, rows=64, cols=64, wavelengths_nm=tuple(np.linspace(420, 880, 8)))
    params = {"MODE": "reference", "REFERENCE": str(reference), "SRF": "sentinel2a:B2,B3,B4", "SCALE": 4,
              "ITERATIONS": 2, "DEVICE": "cpu", "OUTPUT_MODEL": str(tmp_path / "out" / "m.safetensors"), **changes}
    algorithm = QgsApplication.processingRegistry().algorithmById("cofusion:train")
    ok, message = algorithm.checkParameterValues(params, QgsProcessingContext())
    assert not ok and "\n" not in message and _matches(message, words), message  # the dialog shows this before Run
    with pytest.raises(QgsProcessingException) as caught:
        run("train", params)
    assert str(caught.value).splitlines()[-1] == message  # processing.run puts "Unable to execute algorithm" above
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.qgis
def test_processing_accepts_good_settings_in_check_parameter_values(plugin, make_raster, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext

    reference = make_raster(bands=8, rows=64, cols=64, wavelengths_nm=tuple(np.linspace(420, 880, 8)))
    algorithm = QgsApplication.processingRegistry().algorithmById("cofusion:train")
    for extra in ({"ITERATIONS": 2}, {"ITERATIONS": 0, "MINUTES": 0.5}, {"PATCH_SIZE": 32}):
        params = {"MODE": "reference", "REFERENCE": str(reference), "SRF": "sentinel2a:B2,B3,B4", "SCALE": 4,
                  "DEVICE": "cpu", "OUTPUT_MODEL": str(tmp_path / "m.safetensors"), **extra}
        assert algorithm.checkParameterValues(params, QgsProcessingContext()) == (True, ""), extra


# --------------------------------------------------------------------------------------------------- disk full

TRAIN_TINY = """
import sys
from cofusion.core.errors import CoFusionError
from cofusion.training.api import train_reference
from cofusion.training.trainer import TrainSettings

settings = TrainSettings(iterations=4, batch_size=2, patch=16, validate_every=2, warmup=2, device="cpu",
                         model={"width": 8, "top_k": 2})
try:
    train_reference([sys.argv[1]], "sentinel2a:B2,B3,B4", 4, sys.argv[2], settings=settings)
except CoFusionError as exc:
    print(type(exc).__name__, exc)
else:
    print("trained")
"""


def _limit_files(limit: int):
    """A child's pre-exec hook: no file may grow past `limit` bytes (EFBIG, SIGXFSZ ignored)."""
    import resource

    def hook() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return hook


def _tmpfs(folder: Path, size: str):
    import os

    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE cases cover the full disk without it)")
    return lambda: subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def reference_scene(make_raster) -> Path:
    rng = np.random.default_rng(0)
    data = (0.1 + rng.random((8, 64, 64), np.float32) * 0.01).astype(np.float32)
    yy, xx = np.mgrid[0:64, 0:64] / 64
    data += (np.exp(-((yy - 0.4) ** 2 + (xx - 0.6) ** 2) / 0.05) * np.linspace(0.1, 0.5, 8)[:, None, None])
    return make_raster(data=data.astype(np.float32), wavelengths_nm=tuple(np.linspace(420, 880, 8)),
                       name="reference.tif")


@pytest.mark.parametrize("filler", ["model_does_not_fit_16_KiB", "tmpfs_of_16_KiB"])
def test_a_full_disk_is_an_output_error_with_the_fix_and_leaves_no_partial_file(filler, reference_scene, tmp_path,
                                                                                request):
    """The tiny model's checkpoint is about 50 KB, its resume state (weights, their average and Adam's moments)
    about four times that: a limit of 16 KiB stops the first checkpoint, one of 160 KiB the first resume state."""
    folder, hook = tmp_path / "out", None
    folder.mkdir()
    if filler.startswith("tmpfs"):
        request.addfinalizer(_tmpfs(folder, "16k"))
    else:
        hook = _limit_files((16 if "16" in filler else 160) * 1024)
    out = folder / "m.safetensors"
    done = subprocess.run([sys.executable, "-c", TRAIN_TINY, str(reference_scene), str(out)], capture_output=True,
                          text=True, timeout=300, preexec_fn=hook)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.startswith("OutputError ") and "free space" in done.stdout, done.stdout
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout
    assert not out.exists()  # never a model that is part of one
    left = {p.name for p in folder.iterdir()}
    assert not any(name.endswith(".tmp") for name in left), left  # no temporary file either
    from cofusion.core.checkpoint import load_checkpoint

    for name in left:  # what is left (the log, a best checkpoint so far) is whole
        if name.endswith(".safetensors"):
            load_checkpoint(folder / name)


def test_a_model_that_cannot_be_saved_leaves_an_existing_model_intact(tmp_path, monkeypatch):
    """The disk fills up while the new model is written (the sync before the rename fails with ENOSPC)."""
    import errno
    import os

    from cofusion.core.checkpoint import load_checkpoint, save_checkpoint
    from cofusion.core.errors import OutputError

    from .conftest import save_tiny_model

    out = save_tiny_model(tmp_path / "m.safetensors")
    earlier, checkpoint = out.read_bytes(), load_checkpoint(out)
    before = tree(tmp_path)

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        save_checkpoint(out, checkpoint.model, checkpoint.card)
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "free space" in message, message
    assert out.read_bytes() == earlier and tree(tmp_path) == before
