# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults during a fusion: the process killed (kill -9) while writing, the disk filling up, a cancel from QGIS at
random moments. None may leave a file at the target path that looks like a result."""
from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cofusion.core.raster import read_info, read_raster, write_raster

from .conftest import HR_GT, HSI, LR_GT, MSI, TILE, WAVELENGTHS, Scene

BIG_LR = 256  # LR pixels a side: a CLI run with batch 1 takes minutes on a busy 2-core CPU
BLOCK = 64  # HR pixels: the output is fused in strips of 64 columns and written tile by tile


def _wkt() -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    return srs.ExportToWkt()


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory, tiny_model) -> tuple[Path, Path, Path]:
    """(LRHSI 256 x 256, HRMSI 512 x 512, model): 256 tiles of 32 HR pixels."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    lr, hr = folder / "lr.tif", folder / "hr.tif"
    write_raster(lr, rng.random((HSI, BIG_LR, BIG_LR), np.float32), geotransform=LR_GT, crs_wkt=_wkt(),
                 wavelengths_nm=WAVELENGTHS)
    write_raster(hr, rng.random((MSI, 2 * BIG_LR, 2 * BIG_LR), np.float32), geotransform=HR_GT, crs_wkt=_wkt())
    return lr, hr, tiny_model


def _cli(lr: Path, hr: Path, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cofusion", "fuse", "--lrhsi", str(lr), "--hrmsi", str(hr), "--model", str(model),
            "--out", str(out), "--device", "cpu", "--tile", str(TILE), "--overlap", "0", "--batch", "1",
            "--block", str(BLOCK), "-q"]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


# ------------------------------------------------------------------------------------------------------ kill -9


@pytest.mark.parametrize(("previous", "seed"), [(False, 1), (True, 2)], ids=["no_previous_output", "previous_output"])
def test_kill_9_while_writing_leaves_no_file_at_the_target(big_inputs, tmp_path, previous, seed):
    out = tmp_path / "fused.tif"
    if previous:  # an earlier result at the target must survive intact (the rename is the only write to it)
        write_raster(out, np.full((1, 4, 4), 7.0, np.float32))
    earlier = out.read_bytes() if previous else None
    child = subprocess.Popen(_cli(*big_inputs, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: any(tmp_path.glob(".fused.tif.*.tmp.tif")) or child.poll() is not None, 120,
                  "the temporary output file")
        temp = next(tmp_path.glob(".fused.tif.*.tmp.tif"))
        empty = temp.stat().st_size
        _wait_for(lambda: temp.stat().st_size > empty or child.poll() is not None, 120, "the first block written")
        time.sleep(random.Random(seed).uniform(0.0, 0.5))  # somewhere in the writes of the following blocks
        assert child.poll() is None, "the fusion ended before the kill: make the scene larger"
    finally:
        child.kill()  # SIGKILL: no handler, no cleanup
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    if previous:
        assert out.read_bytes() == earlier
    else:
        assert not out.exists()
    # what a killed process cannot delete is its hidden temporary file, never a file named like the target
    assert all(p.name.startswith(".fused.tif.") and p.name.endswith(".tmp.tif")
               for p in tmp_path.iterdir() if p != out)


# --------------------------------------------------------------------------------------------------- disk full


def _tmpfs(folder: Path, size: str) -> Callable[[], None]:
    """Mount a tmpfs of `size` on `folder`; returns the unmount. Skips where mounting is not allowed."""
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE case covers the full disk without it)")
    return lambda: subprocess.run(["umount", str(folder)], check=True)


def _file_size_limit(limit: int) -> Callable[[], None]:
    """A child's pre-exec hook: files may not grow past `limit` bytes, and writing past it fails with EFBIG
    instead of killing the process (SIGXFSZ ignored)."""
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return limit_files


# the core engine with an analytic predictor (no PyTorch to import: the child starts in a second)
FUSE_UPSAMPLED = f"""
import sys
import numpy as np
from cofusion.core.errors import CoFusionError
from cofusion.core.fuse import fuse_raster

class Upsampled:
    scale, hsi_bands, msi_bands, align = 2, {HSI}, {MSI}, 16
    hsi_fill, msi_fill = np.zeros({HSI}, np.float32), np.zeros({MSI}, np.float32)

    def __call__(self, lr, hr):
        return lr.repeat(2, axis=2).repeat(2, axis=3) + hr.mean(axis=1, keepdims=True)

try:
    fuse_raster(*sys.argv[1:4], Upsampled(), tile={TILE}, overlap=0, batch=1, block={BLOCK})
except CoFusionError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("filler", ["tmpfs_of_32_KiB", "rlimit_fsize_of_32_KiB"])
def test_a_full_disk_is_a_clear_output_error_and_leaves_nothing(big_inputs, tmp_path, request, filler):
    """The output (5 bands of 512 x 512 float32: 5 MiB raw, its first block 80 KiB) does not fit: a real full
    filesystem (a small tmpfs, root only) is refused before the first pixel (the free-space check), a per-process
    file size limit (any user: the disk says it has room) fails while writing; both end in the OutputError about
    disk space, in a child process (the limit and the mount stay out of the test process)."""
    folder, hook = tmp_path / "out", None
    if filler.startswith("tmpfs"):
        request.addfinalizer(_tmpfs(folder, "32k"))
    else:
        folder.mkdir()
        hook = _file_size_limit(32 * 1024)
    lr, hr, _model = big_inputs
    done = subprocess.run([sys.executable, "-c", FUSE_UPSAMPLED, str(lr), str(hr), str(folder / "fused.tif")],
                          capture_output=True, text=True, timeout=120, preexec_fn=hook)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    if filler.startswith("tmpfs"):
        assert done.stdout.startswith("OutputError") and "of disk space but" in done.stdout, done.stdout
        assert "free some space" in done.stdout and len(done.stdout.strip().splitlines()) == 1, done.stdout
    else:
        assert done.stdout.startswith("OutputError Writing") and "free space" in done.stdout, done.stdout
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------------------------------------ QGIS cancel


def _params(scene: Scene, **extra) -> dict:
    return {"LRHSI": str(scene.lr), "HRMSI": str(scene.hr), "MODEL": str(scene.model), "OUTPUT": str(scene.out),
            "TILE_SIZE": TILE, "OVERLAP": 0, "DEVICE": "cpu", **extra}


@pytest.mark.qgis
def test_a_cancel_at_random_moments_stops_and_qgis_stays_usable(run, big_inputs, scene, tmp_path):
    """How fast it stops is measured in bench/cancel_latency.py (results in bench/results), not here."""
    from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

    rng = random.Random(7)
    for attempt in range(4):
        feedback = QgsProcessingFeedback()
        out = tmp_path / "out" / f"big{attempt}.tif"

        timer = threading.Timer(rng.uniform(0.05, 1.5), feedback.cancel)  # from model loading to mid-run
        timer.start()
        with pytest.raises(QgsProcessingException, match="canceled"):
            run("fuse", _params(Scene(*big_inputs, out), BATCH_SIZE=1), feedback)
        timer.join()
        assert list(out.parent.iterdir()) == []
    # QGIS is still usable: the provider is there and the same algorithm fuses the small scene
    assert QgsApplication.processingRegistry().providerById("cofusion") is not None
    assert run("fuse", _params(scene))["OUTPUT"] == str(scene.out)
    info = read_info(scene.out)
    assert (info.band_count, info.width, info.height) == (HSI, 32, 32) and np.isfinite(read_raster(scene.out)).all()
