# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad bands (core.bands): found by flag, by nodata everywhere and by constancy; left out of every fusion and
written back as nodata with bbl = 0, band numbers kept; a model's bands matched by wavelength."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.bands import (
    NO_DATA,
    NOT_IN_MODEL,
    BandScreen,
    BandView,
    plan_good_bands,
    plan_model_bands,
    screen_bands,
)
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.errors import CheckpointError, InputError
from cofusion.core.fuse import fuse_raster
from cofusion.core.raster import RasterReader, read_info, read_raster
from cofusion.core.window import Window

SCALE = 3
NODATA = -32768.0
#: An EnMAP-like sensor: 12 bands from 420 to 2300 nm.
WAVELENGTHS = tuple(float(w) for w in np.linspace(420.0, 2300.0, 12))


def _lr_scene(make_raster, *, nodata_bands=(5, 6), constant_bands=(9,), flagged=(2,), rows=12, cols=15,
              name="lr.tif", wavelengths=WAVELENGTHS, seed=0) -> Path:
    """An LRHSI with bad bands: some nodata everywhere, some constant, some flagged bbl = 0 in band metadata;
    a nodata border (first column) as real L2A scenes have. Int16 reflectance x 10000, 90 m pixels."""
    rng = np.random.default_rng(seed)
    data = rng.integers(500, 6000, (len(wavelengths), rows, cols)).astype(np.int16)
    data[list(nodata_bands)] = NODATA
    data[list(constant_bands)] = 0
    data[:, :, 0] = NODATA
    path = make_raster(data=data, name=name, wavelengths_nm=wavelengths,
                       geotransform=(500000.0, 90.0, 0.0, 5000000.0, 0.0, -90.0))
    ds = gdal.Open(str(path), gdal.GA_Update)
    for band in range(len(wavelengths)):
        ds.GetRasterBand(band + 1).SetNoDataValue(NODATA)
        ds.GetRasterBand(band + 1).SetMetadataItem("bbl", "0" if band in flagged else "1")
    ds = None
    return path


def _hr_scene(make_raster, rows=12, cols=15) -> Path:
    data = np.random.default_rng(1).random((4, rows * SCALE, cols * SCALE), np.float32)
    return make_raster(data=data, name="hr.tif", geotransform=(500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0))


def test_bad_bands_are_found_with_their_reasons(make_raster, caplog):
    path = _lr_scene(make_raster)
    assert read_info(path).bad_band_flags == tuple(b == 2 for b in range(12))
    with caplog.at_level(logging.WARNING, logger="cofusion.core.bands"), RasterReader(path) as reader:
        screen = screen_bands(reader)
    assert screen.bad == (2, 5, 6, 9)
    assert screen.reasons[2] == "flagged bad (bbl = 0)" and screen.reasons[5] == screen.reasons[6] == NO_DATA
    assert screen.reasons[9] == "constant (0)"
    assert "4 of 12 bands" in caplog.text and "bands 6-7 (1275-1445 nm) nodata everywhere" in caplog.text


def test_the_screen_reads_in_strips_and_equals_one_read(make_raster, monkeypatch):
    path = _lr_scene(make_raster)
    with RasterReader(path) as reader:
        whole = screen_bands(reader)
        monkeypatch.setattr("cofusion.core.bands.SCREEN_CHUNK_VALUES", 1)  # one row a read
        assert screen_bands(reader) == whole
        # over one valid pixel every band is constant: bad in that window
        assert screen_bands(reader, Window(1, 0, 2, 1)).bad == (2, 5, 6, 9)
        with pytest.raises(InputError, match="every band is bad"):
            screen_bands(reader, Window(1, 0, 1, 1))


def test_a_raster_whose_every_band_is_bad_is_refused(make_raster):
    path = _lr_scene(make_raster, nodata_bands=range(6), constant_bands=range(6, 12), flagged=())
    with RasterReader(path) as reader, pytest.raises(InputError, match="every band is bad.*bad band list"):
        screen_bands(reader)


def test_envi_bad_band_list_is_read(tmp_path):
    path = tmp_path / "scene.img"
    ds = gdal.GetDriverByName("ENVI").Create(str(path), 4, 3, 3, gdal.GDT_Float32)
    ds.SetMetadata({"wavelength": "{ 450, 550, 650 }", "wavelength_units": "Nanometers", "bbl": "{ 1, 0, 1 }"},
                   "ENVI")
    ds = None
    assert read_info(path).bad_band_flags == (False, True, False)


def test_classical_fusion_leaves_bad_bands_out_and_writes_them_as_nodata(make_raster, tmp_path):
    # The first bug of issue 14: nodata in six bad bands made every pixel nodata.
    lr, hr = _lr_scene(make_raster), _hr_scene(make_raster)
    out = fuse_classic_raster(lr, hr, tmp_path / "gsa.tif", "gsa")
    fused = read_raster(out)
    assert fused.shape == (12, 36, 45)
    ds = gdal.Open(str(out))
    bbl = [ds.GetRasterBand(b + 1).GetMetadataItem("bbl") for b in range(12)]
    assert bbl == ["0" if b in (2, 5, 6, 9) else "1" for b in range(12)]
    assert read_info(out).wavelengths_nm == pytest.approx(WAVELENGTHS)
    assert (fused[[2, 5, 6, 9]] == NODATA).all()
    good = [b for b in range(12) if b not in (2, 5, 6, 9)]
    assert (fused[good][:, :, :SCALE] == NODATA).all()  # the nodata border of the LRHSI
    inner = fused[good][:, :, SCALE:]
    assert np.isfinite(inner).all() and (inner != NODATA).all()  # every pixel inside the border is valid
    # the good bands are exactly the fusion of the good bands alone
    subset = tmp_path / "good.tif"
    gdal.Translate(str(subset), str(lr), bandList=[b + 1 for b in good])
    np.testing.assert_array_equal(read_raster(fuse_classic_raster(subset, hr, tmp_path / "g.tif", "gsa")),
                                  fused[good])


class _ModelLike:
    """A pointwise predictor with a model's band list: the HR output of band k is LR band k's value."""

    def __init__(self, wavelengths_nm, msi_bands=4):
        self.wavelengths_nm = tuple(wavelengths_nm)
        self.hsi_bands, self.msi_bands, self.scale, self.align = len(wavelengths_nm), msi_bands, SCALE, SCALE
        self.hsi_fill = np.full(self.hsi_bands, 0.1, np.float32)
        self.msi_fill = np.full(msi_bands, 0.1, np.float32)
        self.inputs: list[np.ndarray] = []

    def __call__(self, lr, hr):
        self.inputs.append(lr)
        return lr.repeat(SCALE, -2).repeat(SCALE, -1)


def test_a_model_fuses_a_scene_whose_bad_bands_differ_from_its_training_scene(make_raster, tmp_path, caplog):
    # Trained on the good bands of a scene whose bad bands were 2, 5, 6, 9; this scene of the same sensor has
    # band 7 bad as well (the model's band 6) and band 2 good (not a band of the model).
    model_bands = [b for b in range(12) if b not in (2, 5, 6, 9)]
    predictor = _ModelLike([WAVELENGTHS[b] + 2.0 for b in model_bands])  # nominal centres differ by 2 nm
    lr = _lr_scene(make_raster, nodata_bands=(5, 6, 7), constant_bands=(9,), flagged=())
    hr = _hr_scene(make_raster)
    with caplog.at_level(logging.INFO):
        fuse_raster(lr, hr, tmp_path / "out.tif", predictor, tile=SCALE * 5, overlap=0)
    fused, source = read_raster(tmp_path / "out.tif"), read_raster(lr)
    for band in range(12):
        if band in (0, 1, 3, 4, 8, 10, 11):  # the model's usable bands, each at its own band number
            np.testing.assert_array_equal(fused[band][:, SCALE:],
                                          source[band].repeat(SCALE, 0).repeat(SCALE, 1)[:, SCALE:])
        else:  # bad here (5, 6, 7, 9) or not a band of the model (2)
            assert (fused[band] == NODATA).all(), band
    ds = gdal.Open(str(tmp_path / "out.tif"))
    bbl = [ds.GetRasterBand(b + 1).GetMetadataItem("bbl") for b in range(12)]
    assert bbl == ["1" if b in (0, 1, 3, 4, 8, 10, 11) else "0" for b in range(12)]
    # the model's band 5 (raster band 8, bad here) reached the network interpolated along the wavelength
    # between its usable neighbours, the model's bands 4 and 6 (raster bands 5 and 9)
    first = predictor.inputs[0][0]
    t = (WAVELENGTHS[7] - WAVELENGTHS[4]) / (WAVELENGTHS[8] - WAVELENGTHS[4])
    np.testing.assert_allclose(first[4], (1 - t) * first[3] + t * first[5], rtol=1e-5)
    assert "interpolated" in caplog.text and NOT_IN_MODEL in caplog.text


def test_model_bands_that_match_no_band_or_are_mostly_bad_are_refused(make_raster):
    lr = _lr_scene(make_raster)
    info = read_info(lr)
    with RasterReader(lr) as reader:
        screen = screen_bands(reader)
    with pytest.raises(CheckpointError, match="no band of it after band 1 lies within 10 nm of the model's band 2 at "
                                              "700.0"):
        plan_model_bands(screen, info, 3, (420.0, 700.0, 2300.0))
    with pytest.raises(CheckpointError, match="3 of the model's 6 bands are bad"):
        plan_model_bands(screen, info, 6, [WAVELENGTHS[b] for b in (0, 2, 5, 6, 7, 8)])
    with pytest.raises(CheckpointError, match="expects 9 hyperspectral bands but .* has 12 \\(8 good\\)"):
        plan_model_bands(screen, info.__class__(**{**info.__dict__, "wavelengths_nm": None}), 9, None)


def test_without_wavelengths_a_model_of_the_good_bands_matches_by_position():
    screen = BandScreen((None, "nodata everywhere", None, None))

    class Info:
        path, band_count, wavelengths_nm = "x.tif", 4, None

    plan = plan_model_bands(screen, Info, 3, None)
    assert plan.sources == (0, 2, 3) and plan.bbl == (True, False, True, True)
    assert plan_model_bands(screen, Info, 4, None).usable == (True, False, True, True)
    good = plan_good_bands(screen, (400.0, 500.0, 600.0, 700.0))
    assert good.sources == (0, 2, 3) and good.wavelengths_nm == (400.0, 600.0, 700.0)


def test_a_band_view_shows_the_working_bands_and_their_validity(make_raster):
    path = _lr_scene(make_raster)
    with RasterReader(path) as reader:
        plan = plan_good_bands(screen_bands(reader), read_info(path).wavelengths_nm)
        view = BandView(reader, plan)
        data, valid = view.read_valid(Window(0, 0, 15, 12))
    assert view.info.band_count == 8 and view.info.wavelengths_nm == plan.wavelengths_nm
    assert data.shape == (8, 12, 15) and not valid[:, 0].any() and valid[:, 1:].all()


def test_overlapping_detectors_match_band_for_band_in_order():
    # PRISMA's VNIR ends above 970 nm, its SWIR starts near 940 nm: the global nearest band of a SWIR band at 943
    # would be a VNIR one; matched in order, every model band reads its own
    wavelengths = (900.0, 921.0, 942.0, 963.0, 940.0, 950.0, 960.0, 1000.0)

    class Info:
        path, band_count, wavelengths_nm = "prisma.tif", 8, wavelengths

    screen = BandScreen((None,) * 8)
    plan = plan_model_bands(screen, Info, 8, [w + 1.0 for w in wavelengths])
    assert plan.sources == tuple(range(8))
    subset = plan_model_bands(screen, Info, 5, [wavelengths[b] for b in (0, 2, 3, 4, 6)])
    assert subset.sources == (0, 2, 3, 4, 6)
    # a band bad in the scene is interpolated along the band order where the wavelengths fold back
    bad = plan_model_bands(BandScreen((None, None, None, "nodata everywhere", None, None, None, None)), Info, 8,
                           wavelengths)
    filled = bad.fill_missing(np.arange(7, dtype=np.float32)[:, None] * 2.0)
    assert filled[3, 0] == pytest.approx((filled[2, 0] + filled[4, 0]) / 2)
