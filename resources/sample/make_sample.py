# SPDX-License-Identifier: GPL-2.0-or-later
"""Make the bundled sample scene from ../shared/data/aviris_jasper_ridge.tif (run from the repository root)::

    .venv/bin/python resources/sample/make_sample.py [--data ../shared/data]

Writes ``reference.tif`` (the AVIRIS test region, 198 bands, reflectance on [0, 1] as float32: the stored
values divided by 10000, as BENCHMARK.md scales them) and the pair simulated from it by BENCHMARK.md's Wald
protocol at x4: ``lrhsi.tif`` (198 bands) and ``hrmsi.tif`` (Sentinel-2A B2, B3, B4, B8), float32 reflectance
too. The crop is the benchmark's test region of the scene (cols 52-99, rows 0-95), which the bundled default
model never saw in training.

The scene comes without georeferencing; the files get an approximate one for display in QGIS only: UTM zone
10N (EPSG:32610), 20 m HR pixels, upper-left corner near Jasper Ridge, California. It is not surveyed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from osgeo import osr

from cofusion.core.degrade import simulate
from cofusion.core.raster import RasterReader, read_info, write_raster
from cofusion.core.srf import parse_srf
from cofusion.core.window import Window

HERE = Path(__file__).resolve().parent
TEST_REGION = Window(52, 0, 48, 96)
SCALE = 4
REFLECTANCE_SCALE = 10000.0
MSI = "sentinel2a:B2,B3,B4,B8"
#: Approximate upper-left corner (UTM 10N metres) and HR pixel size (m): for display, not surveyed.
ORIGIN = (560_000.0, 4_143_000.0)
PIXEL = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data")
    args = parser.parse_args()
    source = args.data / "aviris_jasper_ridge.tif"
    info = read_info(source)
    with RasterReader(source) as reader:
        reference = reader.read(TEST_REGION) / REFLECTANCE_SCALE
    srf = parse_srf(MSI)
    lr_hsi, hr_msi = simulate(reference, srf.matrix(info.wavelengths_nm, info.fwhm_nm), SCALE)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32610)
    hr_grid = (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL)
    lr_grid = (ORIGIN[0], PIXEL * SCALE, 0.0, ORIGIN[1], 0.0, -PIXEL * SCALE)
    spectral = {"wavelengths_nm": info.wavelengths_nm, "fwhm_nm": info.fwhm_nm}
    write_raster(HERE / "reference.tif", reference, geotransform=hr_grid, crs_wkt=srs.ExportToWkt(),
                 **spectral)
    write_raster(HERE / "lrhsi.tif", lr_hsi, geotransform=lr_grid, crs_wkt=srs.ExportToWkt(), **spectral)
    write_raster(HERE / "hrmsi.tif", hr_msi, geotransform=hr_grid, crs_wkt=srs.ExportToWkt(),
                 wavelengths_nm=srf.centre_wavelengths_nm(), band_names=srf.band_names)


if __name__ == "__main__":
    main()
