# SPDX-License-Identifier: GPL-2.0-or-later
"""The spectra view read as EnMAP-Box's spectral profile view: a colour per point and a line style per layer, a
points x layers legend table, the y axis in the data's units, breaks at bad bands and wavelength jumps, band
numbers on an axis of their own, Clear that clears everything (curves, read-outs, footprints), the LR pixel's
footprint on the map, and curves sent to a spectral library layer."""
from __future__ import annotations

import gc
import json

import numpy as np
import pytest
from osgeo import gdal

from .conftest import HR_GT, LR_GT, WAVELENGTHS, smooth_reference
from .test_dock import UTM32, WGS84, click, plotted, to_canvas
from .test_dock import dock as dock  # noqa: F401 (fixtures of the dock's tests, reused)
from .test_dock import scene as scene  # noqa: F401

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
qgis_gui = pytest.importorskip("qgis.gui")
from qgis.PyQt import sip  # noqa: E402
from qgis.PyQt.QtCore import QPointF  # noqa: E402

from cofusion.cofusion_qgis import spectra_plot  # noqa: E402
from cofusion.core.spectrum import Curve, plot_arrays, spectrum_at, value_unit  # noqa: E402

ROLES = ("fused", "lrhsi", "reference", "hrmsi")


def by_point_and_role(dock) -> dict[tuple[int, str], object]:
    """The plot items by (point number, role)."""
    return {(point.number, role): item for item, point, role, _curve in dock.spectra.plot.drawn}


def two_points(dock) -> None:
    click(dock, 5, 3)
    dock.spectra.pin_button.click()
    click(dock, 9, 12)


def rubber_bands(canvas) -> list:
    return [item for item in canvas.scene().items() if isinstance(item, qgis_gui.QgsRubberBand)]


@pytest.fixture(autouse=True)
def collect_garbage():
    """pyqtgraph's items hold reference cycles (a view box and its menu): collected after each test, while the
    QgsApplication is alive, not at the session's end after it is gone (where collecting Qt widgets may crash)."""
    yield
    gc.collect()


@pytest.fixture
def plot(qgis_app):
    """A SpectraPlot of its own, 400 x 300."""
    widget = spectra_plot.SpectraPlot()
    widget.resize(400, 300)
    yield widget
    sip.delete(widget)


def curve_of(path, col=0.5, row=0.5, gt=HR_GT, label="layer") -> Curve:
    return Curve(f"{label} @ 0, 0", spectrum_at(path, gt[0] + col * gt[1], gt[3] + row * gt[5]))


def test_two_points_get_two_colours_and_each_layer_its_own_line_style(dock):
    two_points(dock)
    items = by_point_and_role(dock)
    assert set(items) == {(p, r) for p in (1, 2) for r in ROLES}
    colours = {key: item.opts["pen"].color().name().upper() for key, item in items.items()}
    styles = {key: item.opts["pen"].style() for key, item in items.items()}
    for point in (1, 2):  # one colour per point, the point's
        assert {colours[point, r] for r in ROLES} == {spectra_plot.POINT_COLORS[point - 1].upper()}
    assert colours[1, "fused"] != colours[2, "fused"]
    for role in ROLES:  # one style per layer, the same at every point
        assert styles[1, role] == styles[2, role] == spectra_plot.STYLES[role]
    assert len({styles[1, r] for r in ROLES}) == len(ROLES)
    assert items[1, "hrmsi"].opts["symbol"] == "o" and items[1, "fused"].opts["symbol"] is None


def test_the_legend_is_a_points_by_layers_table(dock):
    click(dock, 0, 0)  # nodata in the fused raster: that point has no fused curve
    dock.spectra.pin_button.click()
    click(dock, 5, 3)
    table = dock.spectra.plot.legend
    assert (table.rowCount(), table.columnCount()) == (2, 4) and not table.isHidden()
    headers = [table.horizontalHeaderItem(c).text() for c in range(4)]
    assert sorted(headers) == ["Fused", "HRMSI", "LRHSI", "Reference"]
    fused = headers.index("Fused")
    assert table.item(0, fused).text() == "–" and table.item(1, fused).icon().isNull() is False
    for row, colour in enumerate(spectra_plot.POINT_COLORS[:2]):
        header = table.verticalHeaderItem(row)
        assert header.text() == f"P{row + 1}"
        swatch = header.icon().pixmap(12, 12).toImage()
        assert swatch.pixelColor(6, 6).name().upper() == colour.upper()
        for column in range(4):
            if (row, column) != (0, fused):
                assert not table.item(row, column).icon().isNull()
                assert table.item(row, column).toolTip().startswith(("fused", "lrhsi", "reference", "hrmsi"))
    assert table.height() < 200  # compact: a table, not a text block growing with every curve


def test_the_y_axis_says_reflectance_or_the_raster_unit(plot, make_raster):
    reflectance = make_raster(data=smooth_reference(4, 4), wavelengths_nm=WAVELENGTHS, geotransform=HR_GT)
    plot.show_point([("fused", curve_of(reflectance))])
    assert plot.widget.getPlotItem().getAxis("left").labelText == "Reflectance"

    radiance = make_raster(data=smooth_reference(4, 4) * 100, wavelengths_nm=WAVELENGTHS, geotransform=HR_GT)
    ds = gdal.Open(str(radiance), gdal.GA_Update)
    for b in range(ds.RasterCount):
        ds.GetRasterBand(b + 1).SetUnitType("W m-2 sr-1 um-1")
    ds = None
    plot.show_point([("fused", curve_of(radiance))])
    assert plot.widget.getPlotItem().getAxis("left").labelText == "Value (W m-2 sr-1 um-1)"

    unknown = make_raster(data=smooth_reference(4, 4) * 100, wavelengths_nm=WAVELENGTHS, geotransform=HR_GT)
    plot.show_point([("fused", curve_of(unknown))])
    assert plot.widget.getPlotItem().getAxis("left").labelText == "Value (raster units)"


def test_reflectance_is_told_by_metadata_scale_and_range(make_raster):
    scaled = make_raster(data=(smooth_reference(4, 4) * 10000).astype("int16"), geotransform=HR_GT)
    assert curve_of(scaled).spectrum.unit == "reflectance × 10000"  # Int16 0..10000, no scale: x 10000
    ds = gdal.Open(str(scaled), gdal.GA_Update)
    for b in range(ds.RasterCount):
        ds.GetRasterBand(b + 1).SetScale(0.0001)  # EnMAP L2A: the reader applies the scale
    ds = None
    assert curve_of(scaled).spectrum.unit == "reflectance"
    envi = make_raster(data=smooth_reference(4, 4) * 500, geotransform=HR_GT)
    ds = gdal.Open(str(envi), gdal.GA_Update)
    ds.SetMetadataItem("reflectance_scale_factor", "1000", "ENVI")
    ds = None
    assert curve_of(envi).spectrum.unit == "reflectance × 1000"
    assert value_unit(["Reflectance"], None, [1.0], "float32", np.array([500.0])) == "reflectance"
    assert value_unit([], None, [1.0], "float32", np.array([2.0, 40.0])) == ""


def test_bad_bands_nodata_bands_and_wavelength_jumps_break_the_curve(plot, make_raster):
    wavelengths = (450.0, 460.0, 470.0, 480.0, 490.0, 1000.0, 1010.0)  # 490 -> 1000 nm: bands left out
    data = smooth_reference(4, 4, len(wavelengths))
    data[2, 1, 1] = -1.0  # band 3 nodata at pixel (1, 1) only
    path = make_raster(data=data, wavelengths_nm=wavelengths, geotransform=HR_GT)
    ds = gdal.Open(str(path), gdal.GA_Update)
    for b in range(ds.RasterCount):
        ds.GetRasterBand(b + 1).SetNoDataValue(-1.0)
        ds.GetRasterBand(b + 1).SetMetadataItem("bbl", "0" if b == 1 else "1")  # band 2 flagged bad
    ds = None
    curve = curve_of(path, 1.5, 1.5)
    assert curve.spectrum.usable.tolist() == [True, False, False, True, True, True, True]
    plot.show_point([("fused", curve)])
    (item,) = plot.items()
    x, y = item.getData()
    assert item.opts["connect"] == "finite"
    assert len(x) == len(wavelengths) + 1  # one break inserted in the jump
    assert np.isnan(y[[1, 2]]).all() and np.isfinite(y[[0, 3, 4, 6, 7]]).all()
    assert np.isnan(y[5]) and x[5] == pytest.approx(745.0)
    np.testing.assert_array_equal(y[[0, 3, 4]], data[[0, 3, 4], 1, 1])
    even = make_raster(data=smooth_reference(4, 4, 7), wavelengths_nm=tuple(range(450, 1150, 100)),
                       geotransform=HR_GT)
    x_even, y_even = plot_arrays(curve_of(even, 1.5, 1.5).spectrum)
    assert len(x_even) == 7 and np.isfinite(y_even).all()  # even spacing, every band usable: no break


def test_a_layer_without_wavelengths_goes_to_the_band_number_axis(dock, plot, make_raster):
    click(dock, 5, 3)
    view = dock.spectra.plot
    boxes = {role: item.getViewBox() for item, _p, role, _c in view.drawn}
    assert boxes["hrmsi"] is view.band_box
    assert all(boxes[r] is view.box for r in ("fused", "lrhsi", "reference"))
    axes = view.widget.getPlotItem()
    assert axes.getAxis("top").isVisible() and axes.getAxis("top").labelText == "Band number"
    assert axes.getAxis("bottom").labelText == "Wavelength"
    # band numbers only: the bottom axis is the band-number axis, no second one
    plot.show_point([("hrmsi", curve_of(make_raster(data=smooth_reference(4, 4, 3), geotransform=HR_GT)))])
    axes = plot.widget.getPlotItem()
    assert axes.getAxis("bottom").labelText == "Band number" and not axes.getAxis("top").isVisible()
    assert plot.items()[0].getViewBox() is plot.box


def test_the_footprint_is_the_lr_pixel_under_the_point(dock):
    two_points(dock)
    bands = rubber_bands(dock.spectra.canvas)
    assert len(bands) == 2
    colours = sorted(b.strokeColor().name().upper() for b in bands)
    assert colours == sorted(c.upper() for c in spectra_plot.POINT_COLORS[:2])
    # point 1 is HR pixel (5, 3), inside LR pixel (2, 1): 40 x 40 m from (500040, 4999980)
    lr_pixel = qgis_core.QgsGeometry.fromRect(qgis_core.QgsRectangle(
        LR_GT[0] + 2 * 20, LR_GT[3] - 2 * 20, LR_GT[0] + 3 * 20, LR_GT[3] - 1 * 20))
    first = next(band for point, band in dock.spectra.footprints if point.number == 1)
    drawn = first.asGeometry()  # in the canvas CRS (WGS 84)
    drawn.transform(qgis_core.QgsCoordinateTransform(WGS84, UTM32, qgis_core.QgsProject.instance()))
    assert drawn.area() == pytest.approx(400.0, rel=1e-3)
    assert drawn.symDifference(lr_pixel).area() < 1.0


def test_clear_removes_curves_read_outs_and_footprints(dock):
    two_points(dock)
    view = dock.spectra.plot
    view.widget.resize(400, 300)
    view._hover(view.box.mapViewToScene(QPointF(650.0, 0.4)))
    assert "value" in view.readout.text() and "SAM" in dock.spectra.comparison.text()
    assert rubber_bands(dock.spectra.canvas) and dock.spectra.marker is not None
    dock.spectra.clear_button.click()
    assert plotted(dock) == {} and view.points() == [] and view.legend.rowCount() == 0
    assert view.readout.text().strip() == "" and dock.spectra.comparison.text().strip() == ""
    assert "curves" not in dock.spectra.message.text()
    assert rubber_bands(dock.spectra.canvas) == [] and dock.spectra.marker is None
    view._hover(view.box.mapViewToScene(QPointF(650.0, 0.4)))  # nothing on the plot: nothing to read out
    assert view.readout.text().strip() == ""


def test_unloading_removes_the_footprints(dock):
    from cofusion.cofusion_qgis.spectra_panel import SpectraPanel

    canvas = dock.spectra.canvas
    panel = SpectraPanel(canvas, dock.input_layers)
    try:
        panel.inspect(to_canvas(qgis_core.QgsPointXY(HR_GT[0] + 55, HR_GT[3] - 35)))
        assert len(rubber_bands(canvas)) == 1
        panel.unload()
        assert rubber_bands(canvas) == []
    finally:  # what a failing unload left behind, so that the next tests run
        for band in rubber_bands(canvas):
            canvas.scene().removeItem(band)
        sip.delete(panel)


def test_curves_go_to_a_spectral_library_layer(dock):
    project = qgis_core.QgsProject.instance()
    two_points(dock)
    dock.spectra.library_button.click()
    (layer,) = project.mapLayersByName("CoFusion spectra")
    assert layer.providerType() == "memory" and layer.crs() == WGS84
    features = list(layer.getFeatures())
    assert len(features) == 8  # one per curve
    bands = {"fused": 5, "lrhsi": 5, "reference": 5, "hrmsi": 3}
    for feature in features:
        profile = json.loads(feature["spectrum"], parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
        n = bands[feature["role"]]
        assert len(profile["x"]) == len(profile["y"]) == len(profile["bbl"]) == n
        assert profile["xUnit"] == ("Band Number" if feature["role"] == "hrmsi" else "nm")
        assert profile["yUnit"] == "reflectance" and set(profile["bbl"]) == {1}
        point = feature.geometry().asPoint()
        assert (point.x(), point.y()) == pytest.approx((feature["x"], feature["y"]))
        assert feature["layer"] == feature["role"]  # the dock's layers are named after their roles
    assert sorted({f["point_id"] for f in features}) == [1, 2]
    fused_1 = next(f for f in features if f["point_id"] == 1 and f["role"] == "fused")
    fused_curve = next(c for _i, p, r, c in dock.spectra.plot.drawn if p.number == 1 and r == "fused")
    np.testing.assert_allclose(json.loads(fused_1["spectrum"])["y"], fused_curve.spectrum.values)
    dock.spectra.library_button.click()  # appends to the same layer, with new point ids
    assert len(project.mapLayersByName("CoFusion spectra")) == 1 and layer.featureCount() == 16
    assert sorted({f["point_id"] for f in layer.getFeatures()}) == [1, 2, 3, 4]
