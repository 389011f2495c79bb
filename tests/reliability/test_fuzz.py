# SPDX-License-Identifier: GPL-2.0-or-later
"""Property-based test of the streaming engine: over raster shapes, band counts, scales, dtypes, nodata patterns,
grid shifts and tile/overlap/batch/block settings, `fuse_raster` writes an output of the right shape on the right
grid holding the right pixels, or raises a CoFusionError and leaves nothing; never another exception or a hang."""
from __future__ import annotations

import contextlib
import math
import signal
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cofusion.core.errors import CoFusionError, InputError
from cofusion.core.fuse import fuse_raster
from cofusion.core.grid import check_inputs
from cofusion.core.raster import read_info, read_raster, write_raster

# Derandomised (the same examples on every run, so CI is repeatable), modest, with a deadline per example.
settings.register_profile("reliability", derandomize=True, max_examples=100, deadline=timedelta(seconds=10),
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
HARD_LIMIT_S = 30  # an example still running after this is a hang: SIGALRM fails it

UTM_WKT = ('PROJCS["WGS 84 / UTM zone 32N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
           'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
           'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",9],PARAMETER["scale_factor",0.9996],'
           'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
           'AUTHORITY["EPSG","32632"]]')


class Upsampled:
    """The LRHSI repeated `scale` times: exact, so every valid output pixel must equal the LR pixel above it."""

    def __init__(self, scale: int, align: int, hsi: int, msi: int) -> None:
        self.scale, self.align, self.hsi_bands, self.msi_bands = scale, align, hsi, msi
        self.hsi_fill, self.msi_fill = np.zeros(hsi, np.float32), np.zeros(msi, np.float32)

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        assert hr.shape[2:] == (lr.shape[2] * self.scale, lr.shape[3] * self.scale)  # the engine's contract
        return lr.repeat(self.scale, axis=2).repeat(self.scale, axis=3)


@contextlib.contextmanager
def _time_limit(seconds: int):
    def hang(_signum, _frame):
        raise TimeoutError(f"fuse_raster ran longer than {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


NODATA = {"uint8": 255, "int16": -32768, "uint16": 0, "float32": -9999.0, "float64": math.nan}


@st.composite
def scenes(draw) -> dict:
    scale = draw(st.sampled_from([2, 3, 4]))
    lr_rows, lr_cols = draw(st.integers(2, 14)), draw(st.integers(2, 14))
    return {
        "scale": scale,
        "align": scale * draw(st.sampled_from([1, 2])),
        "hsi": draw(st.integers(1, 6)),
        "msi": draw(st.integers(1, 4)),
        "dtype": draw(st.sampled_from(sorted(NODATA))),
        "lr_shape": (lr_rows, lr_cols),
        # the HRMSI covers a little more or less than the LRHSI, and starts some whole HR pixels away
        "hr_shape": tuple(n * scale + draw(st.integers(-scale, scale)) for n in (lr_rows, lr_cols)),
        "shift": (draw(st.sampled_from([0, 0, 1, -1, 3, -3])), draw(st.sampled_from([0, 0, 2, -2, 3, -3]))),
        "nodata": draw(st.sampled_from(["none", "pixel", "rectangle", "all", "nan_inside", "none", "pixel"])),
        # tile = align * steps (+ 1 pixel when misfit); repeated choices weight the usable settings up
        "tile_steps": draw(st.sampled_from([1, 2, 2, 3, 4, 5])),
        "overlap_steps": draw(st.sampled_from([0, 0, 1, 1, 2, 3])),
        "misfit": draw(st.sampled_from([False, False, False, True])),  # a tile that is no multiple of the alignment
        "batch": draw(st.integers(1, 5)),
        "block": draw(st.sampled_from([256, 48, 256, 1])),  # first choices come first
        "seed": draw(st.integers(0, 2**16)),
    }


def _pixels(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return rng.uniform(-5.0, 5.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min + 1, info.max - 1, shape, endpoint=True).astype(dtype)  # the limits are nodata


def _mark_nodata(rng: np.random.Generator, data: np.ndarray, pattern: str, nodata: float) -> None:
    rows, cols = data.shape[1:]
    if pattern == "pixel":
        data[:, rng.integers(rows), rng.integers(cols)] = nodata
    elif pattern == "rectangle":
        r0, c0 = rng.integers(rows), rng.integers(cols)
        data[:, r0:r0 + 1 + rng.integers(rows), c0:c0 + 1 + rng.integers(cols)] = nodata
    elif pattern == "all":
        data[:] = nodata
    elif pattern == "nan_inside" and data.dtype.kind == "f":
        data[rng.integers(data.shape[0]), rng.integers(rows), rng.integers(cols)] = np.nan


def _write_scene(folder: Path, s: dict) -> tuple[Path, Path]:
    rng = np.random.default_rng(s["seed"])
    nodata = NODATA[s["dtype"]]
    lr = _pixels(rng, (s["hsi"], *s["lr_shape"]), s["dtype"])
    _mark_nodata(rng, lr, s["nodata"], nodata)
    hr = _pixels(rng, (s["msi"], *s["hr_shape"]), s["dtype"])
    lr_gt = (500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0)
    px = 30.0 / s["scale"]
    hr_gt = (500000.0 + s["shift"][0] * px, px, 0.0, 5000000.0 - s["shift"][1] * px, 0.0, -px)
    lr_path, hr_path = folder / "lr.tif", folder / "hr.tif"
    write_raster(lr_path, lr, geotransform=lr_gt, crs_wkt=UTM_WKT, nodata=None if s["nodata"] == "none" else nodata)
    write_raster(hr_path, hr, geotransform=hr_gt, crs_wkt=UTM_WKT)
    return lr_path, hr_path


def _check_output(lr_path: Path, hr_path: Path, out: Path, scale: int) -> None:
    """The output is the fusion grid, and every pixel is the LR pixel above it or nodata where an input is."""
    lr_info, hr_info, grid, _ = check_inputs(lr_path, hr_path, out.with_name("other.tif"))
    info, fused = read_info(out), read_raster(out)
    assert (info.band_count, info.width, info.height) == (lr_info.band_count, grid.hr_window.width,
                                                          grid.hr_window.height)
    assert info.geotransform == pytest.approx(grid.geotransform) and info.crs_wkt == hr_info.crs_wkt
    w = grid.lr_window
    lr = read_raster(lr_path)[:, w.row:w.row_end, w.col:w.col_end].repeat(scale, 1).repeat(scale, 2)
    valid = np.isfinite(lr).all(axis=0)
    if lr_info.nodata[0] is not None:
        valid &= (lr != np.float32(lr_info.nodata[0])).all(axis=0)
    out_nodata = info.nodata[0]
    out_valid = np.isfinite(fused).all(axis=0) & ((fused != np.float32(out_nodata)).all(axis=0)
                                                  if out_nodata is not None and not math.isnan(out_nodata) else True)
    np.testing.assert_array_equal(out_valid, valid)
    np.testing.assert_allclose(fused[:, valid], lr[:, valid], rtol=1e-6, atol=1e-6)


def test_an_overlap_as_large_as_the_tile_is_a_clear_error(tmp_path):
    """Found by the fuzzing below: fuse_raster divided by tile - overlap (ZeroDivisionError) before checking them."""
    s = {"scale": 2, "hsi": 2, "msi": 1, "dtype": "float32", "lr_shape": (4, 4), "hr_shape": (8, 8), "shift": (0, 0),
         "nodata": "none", "seed": 0}
    lr_path, hr_path = _write_scene(tmp_path, s)
    with pytest.raises(InputError, match="Tile overlap 4 is not usable with tile size 4"):
        fuse_raster(lr_path, hr_path, tmp_path / "fused.tif", Upsampled(2, 2, 2, 1), tile=4, overlap=4)


@settings(settings.get_profile("reliability"))
@given(s=scenes())
def test_fuse_writes_the_right_grid_and_pixels_or_a_clear_error(s):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lr_path, hr_path = _write_scene(folder, s)
        out = folder / "out" / "fused.tif"
        out.parent.mkdir()
        tile = s["align"] * s["tile_steps"] + (1 if s["misfit"] else 0)
        predictor = Upsampled(s["scale"], s["align"], s["hsi"], s["msi"])
        try:
            with _time_limit(HARD_LIMIT_S):
                fuse_raster(lr_path, hr_path, out, predictor, tile=tile, overlap=s["align"] * s["overlap_steps"],
                            batch=s["batch"], block=s["block"])
        except CoFusionError as exc:
            event(f"refused: {type(exc).__name__}")
            assert str(exc) and list(out.parent.iterdir()) == [], exc
            return
        event("fused")
        _check_output(lr_path, hr_path, out, s["scale"])
        assert [p.name for p in out.parent.iterdir()] == ["fused.tif"]
