# SPDX-License-Identifier: GPL-2.0-or-later
"""core.spectrum: the pixel under a map point equals GDAL's read; outside and nodata; band choice; CSV."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.spectrum import Curve, NoSpectrum, compare, nearest_bands, spectrum_at, write_csv

GT = (500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0)


def test_spectrum_at_a_point_is_gdal_s_pixel(make_raster):
    path = make_raster(5, 7, 9, wavelengths_nm=(450, 550, 650, 750, 850))
    x, y = GT[0] + 4.5 * 30, GT[3] - 2.2 * 30  # column 4, row 2
    spectrum = spectrum_at(path, x, y)
    expected = gdal.Open(str(path)).ReadAsArray(4, 2, 1, 1)[:, 0, 0]
    np.testing.assert_array_equal(spectrum.values, expected)
    assert (spectrum.col, spectrum.row, spectrum.in_nm) == (4, 2, True)
    np.testing.assert_array_equal(spectrum.positions, [450, 550, 650, 750, 850])


def test_without_wavelengths_positions_are_band_numbers(make_raster):
    spectrum = spectrum_at(make_raster(3, 4, 4), GT[0] + 1, GT[3] - 1)
    assert not spectrum.in_nm and spectrum.positions.tolist() == [1, 2, 3]


def test_outside_and_nodata_say_so(make_raster):
    path = make_raster(3, 4, 4, nodata=-9999.0, name="scene.tif")
    with pytest.raises(NoSpectrum, match="outside scene.tif"):
        spectrum_at(path, GT[0] - 1, GT[3] - 1)
    with pytest.raises(NoSpectrum, match="outside"):
        spectrum_at(path, GT[0] + 1, GT[3] - 4 * 30 - 1)
    with pytest.raises(NoSpectrum, match=r"\(column 1, row 1\) of scene.tif is nodata"):
        spectrum_at(path, GT[0] + 1, GT[3] - 1)


def test_nearest_bands_picks_true_colour():
    wavelengths = np.arange(400.0, 1000.0, 10.0)
    assert nearest_bands(wavelengths) == (25, 16, 7)  # 640, 550, 460 nm
    assert nearest_bands((492.4, 559.8, 664.6, 832.8)) == (3, 2, 1)
    assert nearest_bands(None) is None and nearest_bands((500.0, 600.0)) is None


def test_compare_gives_sam_degrees_and_rmse():
    ref = np.array([1.0, 0.0, 0.0])
    sam, rmse = compare(ref, np.array([1.0, 1.0, 0.0]))
    assert sam == pytest.approx(45.0) and rmse == pytest.approx(np.sqrt(1 / 3))
    assert compare(ref, 2 * ref)[0] == pytest.approx(0.0, abs=1e-6)


def test_write_csv_one_row_per_curve_and_band(make_raster, tmp_path):
    with_nm = spectrum_at(make_raster(2, 2, 2, wavelengths_nm=(500, 600)), GT[0] + 1, GT[3] - 1)
    bands = spectrum_at(make_raster(2, 2, 2), GT[0] + 1, GT[3] - 1)
    out = write_csv(tmp_path / "curves.csv", [Curve("a", with_nm), Curve("b", bands)])
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["curve", "band", "wavelength_nm", "value"]
    assert [r[:3] for r in rows[1:]] == [["a", "1", "500"], ["a", "2", "600"], ["b", "1", ""], ["b", "2", ""]]
    assert float(rows[1][3]) == pytest.approx(float(with_nm.values[0]))
