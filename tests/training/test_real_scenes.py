# SPDX-License-Identifier: GPL-2.0-or-later
"""Training on real-style scenes: bad bands left out, nodata borders and holes masked, odd scales, clear refusals."""
from __future__ import annotations

import math

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.degrade import simulate
from cofusion.core.errors import InputError
from cofusion.core.fuse import fuse_raster
from cofusion.core.inference import NetworkPredictor
from cofusion.core.raster import read_raster
from cofusion.core.srf import parse_srf
from cofusion.training.api import train_pair, train_reference
from cofusion.training.data import split_validation, valid_origins
from cofusion.training.trainer import TrainSettings

NODATA = -9999.0
#: 12 bands from 420 to 900 nm; bands 9-10 (813-856 nm) will be nodata everywhere, band 11 (900 nm) constant.
WAVELENGTHS = tuple(float(w) for w in np.linspace(420, 900, 12))
BAD = (9, 10, 11)
MSI = "sentinel2a:B2,B3,B4"
GOOD = tuple(b for b in range(12) if b not in BAD)


def _scene(size=96, seed=0) -> np.ndarray:
    """A smooth positive scene (12, size, size) with a nodata border (4 columns), a nodata hole and bad bands."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.full((12, size, size), 0.1, np.float32)
    for _ in range(6):
        cy, cx, radius = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.1, 0.3)]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / radius ** 2).astype(np.float32)
        image += rng.uniform(0.05, 0.5, (12, 1, 1)).astype(np.float32) * blob
    image[list(BAD[:2])] = NODATA
    image[BAD[2]] = 0.25
    image[:, :, :4] = NODATA
    image[:, 5:11, 120:128] = NODATA
    return image


def _settings(**kw):
    return TrainSettings(**{"iterations": 3, "batch_size": 2, "validate_every": 3, "warmup": 1, "device": "cpu",
                            "model": {"width": 8, "top_k": 2}, **kw})


def _raster(make_raster, data, pixel, name, wavelengths=WAVELENGTHS):
    return make_raster(data=data, name=name, wavelengths_nm=wavelengths, nodata=None,
                       geotransform=(500000.0, pixel, 0.0, 5000000.0, 0.0, -pixel))


def _set_nodata(path, value=NODATA):
    ds = gdal.Open(str(path), gdal.GA_Update)
    for band in range(ds.RasterCount):
        ds.GetRasterBand(band + 1).SetNoDataValue(value)
    ds = None


def test_valid_origins_are_exactly_the_windows_without_nodata():
    rng = np.random.default_rng(3)
    valid = rng.random((23, 31)) > 0.05
    origins = {tuple(o) for o in valid_origins(valid, 6, 3)}
    brute = {(r, c) for r in range(0, 23 - 6 + 1, 3) for c in range(0, 31 - 6 + 1, 3) if valid[r:r + 6, c:c + 6].all()}
    assert origins == brute and origins


def test_the_validation_strip_goes_to_the_end_with_valid_data():
    valid = np.ones((48, 100), bool)
    valid[:, 85:] = False  # a nodata border at the end
    texture = np.zeros((48, 100))
    texture[:, 90:] = np.arange(10)  # more detail there, but no valid pixel
    train, strip = split_validation(48, 100, 16, texture=texture, valid=valid)
    assert strip == (0, 48, 0, 16) and train == (0, 48, 16, 96)


@pytest.mark.parametrize("scale", [3, 4])
def test_reference_mode_trains_on_a_scene_with_bad_bands_and_nodata_then_fuses(make_raster, tmp_path, scale):
    scene = _scene(size=144)
    reference = _raster(make_raster, scene, 10.0, "reference.tif")
    _set_nodata(reference)
    result = train_reference([reference], MSI, scale, tmp_path / "m.safetensors",
                             settings=_settings())
    card = load_checkpoint(result.checkpoint).card
    assert card.config.hsi_bands == len(GOOD) and card.config.scale == scale
    assert card.hsi_wavelengths_nm == pytest.approx([WAVELENGTHS[b] for b in GOOD])
    assert "bands 10-11" in card.provenance["bad_bands"] and "constant" in card.provenance["bad_bands"]
    assert math.isfinite(result.metrics["PSNR"]) and math.isfinite(result.metrics["SAM"])
    # the model fuses a pair of the same sensor: its good bands fused, the bad ones nodata
    crop = scene[:, :144 // scale * scale, :144 // scale * scale]
    clean = np.where(crop == NODATA, 0.3, crop)
    srf = parse_srf(MSI).matrix(WAVELENGTHS)
    lr, hr = simulate(clean, srf, scale)
    lr[list(BAD[:2])] = NODATA
    lr_path = _raster(make_raster, lr, 10.0 * scale, "lr.tif")
    _set_nodata(lr_path)
    hr_path = make_raster(data=hr, name="hr.tif", geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    fuse_raster(lr_path, hr_path, tmp_path / "fused.tif", NetworkPredictor.from_checkpoint(result.checkpoint, "cpu"))
    fused = read_raster(tmp_path / "fused.tif")
    assert fused.shape[0] == 12
    assert (fused[list(BAD)] == NODATA).all()
    assert np.isfinite(fused[list(GOOD)]).all() and (fused[list(GOOD)] != NODATA).all()


def test_pair_mode_trains_on_a_pair_with_bad_bands_and_a_nodata_hole(make_raster, tmp_path):
    scene = _scene(size=288)  # LR 96 x 96: two 48-pixel patches at x3, one to validate
    clean = np.where(scene == NODATA, 0.3, scene)
    srf = parse_srf(MSI).matrix(WAVELENGTHS)
    lr, hr = simulate(clean, srf, 3)
    lr[list(BAD[:2])] = NODATA
    lr[BAD[2]] = 0.25
    lr[:, :, :2] = NODATA  # a nodata border
    lr[:, 10:14, 20:25] = NODATA
    lr_path = _raster(make_raster, lr, 30.0, "lr.tif")
    _set_nodata(lr_path)
    hr_path = make_raster(data=hr, name="hr.tif", geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    result = train_pair(lr_path, hr_path, tmp_path / "pair.safetensors", srf=MSI,
                        settings=_settings())
    card = load_checkpoint(result.checkpoint).card
    assert card.config.hsi_bands == len(GOOD) and card.config.scale == 3
    assert math.isfinite(result.metrics["PSNR"])


def test_too_few_valid_pixels_are_refused_with_the_counts(make_raster, tmp_path):
    scene = _scene()
    scene[:, :, 20:] = NODATA  # 16 valid columns of 96 rows: fewer than two 48 x 48 patches at x3
    reference = _raster(make_raster, scene, 10.0, "reference.tif")
    _set_nodata(reference)
    with pytest.raises(InputError, match=r"holds 1536 valid pixels; training needs at least 4608"):
        train_reference([reference], MSI, 3, tmp_path / "m.safetensors", settings=_settings())
    assert not (tmp_path / "m.safetensors").exists()
