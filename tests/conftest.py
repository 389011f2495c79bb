# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared fixtures: paths to the real data in ../shared/data, small synthetic rasters, and the session's QGIS
(one offscreen QgsApplication with Processing and the plugin, for tests/qgis and tests/reliability; QGIS is imported
only when a test asks for it)."""
from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, gdal_array, osr

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

UTM_32N = 32632
DEFAULT_GEOTRANSFORM = (500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0)
PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real scenes (../shared/data); tests that need it skip where it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a small synthetic GeoTIFF with plain GDAL (not cofusion's writer); returns its path.

    make_raster(bands=4, rows=16, cols=16, *, dtype=None, geotransform=DEFAULT_GEOTRANSFORM,
                epsg=32632, nodata=None, wavelengths_nm=None, fwhm_nm=None, data=None, name=None) -> Path

    - pixels: `data` `(bands, rows, cols)` when given (it then sets bands/rows/cols), else random with a fixed
      seed: uniform [0, 1) for float dtypes, integers in [0, 10000] for integer dtypes.
    - `dtype`: numpy dtype name of the file; default the dtype of `data`, else float32.
    - `geotransform`: GDAL order; default 30 m pixels in UTM 32N. `epsg`: CRS code, None for no CRS.
    - `nodata`: set on every band, and pixel (row 0, col 0) of every band holds it.
    - `wavelengths_nm` / `fwhm_nm`: written as EnMAP-Box band metadata `wavelength`, `fwhm`,
      `wavelength_units`=Nanometers.
    - `name`: file name in the test's tmp_path (default raster_<n>.tif, numbered per test).
    """
    counter = itertools.count()

    def make(
        bands: int = 4,
        rows: int = 16,
        cols: int = 16,
        *,
        dtype: str | None = None,
        geotransform: Sequence[float] = DEFAULT_GEOTRANSFORM,
        epsg: int | None = UTM_32N,
        nodata: float | None = None,
        wavelengths_nm: Sequence[float] | None = None,
        fwhm_nm: Sequence[float] | None = None,
        data: np.ndarray | None = None,
        name: str | None = None,
    ) -> Path:
        dtype = dtype or (data.dtype.name if data is not None else "float32")
        if data is None:
            rng = np.random.default_rng(0)
            if np.dtype(dtype).kind == "f":
                data = rng.random((bands, rows, cols)).astype(dtype)
            else:
                data = rng.integers(0, 10001, (bands, rows, cols)).astype(dtype)
        data = np.array(data, dtype=dtype)
        bands, rows, cols = data.shape
        if nodata is not None:
            data[:, 0, 0] = nodata
        path = tmp_path / (name or f"raster_{next(counter)}.tif")
        gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(data.dtype)
        ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal_type)
        ds.SetGeoTransform(tuple(geotransform))
        if epsg is not None:
            srs = osr.SpatialReference()
            srs.ImportFromEPSG(epsg)
            ds.SetSpatialRef(srs)
        for i in range(bands):
            band = ds.GetRasterBand(i + 1)
            band.WriteArray(data[i])
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
            if wavelengths_nm is not None:
                band.SetMetadataItem("wavelength", str(float(wavelengths_nm[i])))
                band.SetMetadataItem("wavelength_units", "Nanometers")
            if fwhm_nm is not None:
                band.SetMetadataItem("fwhm", str(float(fwhm_nm[i])))
        ds.FlushCache()
        ds = None
        return path

    return make


@pytest.fixture(scope="session")
def qgis_app(tmp_path_factory):
    """The QgsApplication (offscreen, no GUI) with Processing initialised; skips where PyQGIS is absent.

    It runs on a throw-away profile of its own, so that what the tests set (the dock's settings, Processing's)
    never reaches the QGIS settings of the user running them."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    qgis_core = pytest.importorskip("qgis.core")
    from qgis.PyQt.QtCore import QCoreApplication, QSettings

    profile = str(tmp_path_factory.mktemp("qgis-profile"))
    # QGIS_CUSTOM_CONFIG_PATH is where QGIS keeps its profiles (QGIS 3.22 to 3.44 read it when no profile folder is
    # given); the organisation and INI format make QgsSettings a file in it, as QGIS's own start-up does
    previous = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = profile
    QCoreApplication.setOrganizationName(qgis_core.QgsApplication.QGIS_ORGANIZATION_NAME)
    QCoreApplication.setApplicationName(qgis_core.QgsApplication.QGIS_APPLICATION_NAME)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, profile)
    app = qgis_core.QgsApplication([], False)
    app.initQgis()
    if previous is None:  # read at start-up only; child processes (qgis_process in tests) keep their own
        del os.environ["QGIS_CUSTOM_CONFIG_PATH"]
    else:
        os.environ["QGIS_CUSTOM_CONFIG_PATH"] = previous
    try:  # pyqtgraph's exit clean-up touches Qt items after the application is gone (a segfault at exit, 1 in 25)
        import pyqtgraph

        pyqtgraph.setConfigOptions(exitCleanup=False)
    except ImportError:
        pass
    assert qgis_core.QgsSettings().fileName().startswith(profile), qgis_core.QgsSettings().fileName()
    if PROCESSING_PLUGINS not in sys.path:
        sys.path.append(PROCESSING_PLUGINS)
    from processing.core.Processing import Processing

    Processing.initialize()
    return app


@pytest.fixture(scope="session")
def plugin(qgis_app):
    """The CoFusion plugin as qgis_process starts it: classFactory, then initProcessing."""
    import cofusion

    plugin = cofusion.classFactory(None)
    plugin.initProcessing()
    yield plugin
    plugin.unload()


@pytest.fixture
def run(plugin):
    """processing.run('cofusion:<id>', params) with a fresh feedback; returns the results dict."""
    import processing
    from qgis.core import QgsProcessingFeedback

    def run_algorithm(algorithm: str, params: dict, feedback=None) -> dict:
        return processing.run(f"cofusion:{algorithm}", params, feedback=feedback or QgsProcessingFeedback())

    return run_algorithm
