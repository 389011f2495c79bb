# SPDX-License-Identifier: GPL-2.0-or-later
"""Spectra of the dock's layers at a clicked map point: the point is transformed from the canvas CRS to each
layer's CRS and the covering pixel is read from the layer's file with ``core.spectrum.spectrum_at`` (GDAL, one
pixel; main thread, a few reads per click). Layers where the point is outside, on nodata, or that are not file
rasters give a message instead of a curve. ``footprint`` is the polygon of the pixel a curve was read from, in its
layer's CRS (the LRHSI pixel drawn on the map for a point)."""
from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
)

from ..core.errors import InputError
from ..core.spectrum import Curve, compare, pixel_footprint, spectrum_at
from .i18n import tr
from .spectra_plot import FUSED, REFERENCE


def point_in_layer_crs(point: QgsPointXY, crs: QgsCoordinateReferenceSystem, layer: QgsRasterLayer) -> QgsPointXY:
    """``point`` (in ``crs``) in the CRS of ``layer``; QgsCsException when it cannot be transformed."""
    return QgsCoordinateTransform(crs, layer.crs(), QgsProject.instance()).transform(point)


def format_point(point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> str:
    """'x, y' with 6 decimals in a geographic CRS (degrees), else 1 (metres or feet)."""
    decimals = 6 if crs.isGeographic() else 1
    return f"{point.x():.{decimals}f}, {point.y():.{decimals}f}"


def spectra_at(point: QgsPointXY, crs: QgsCoordinateReferenceSystem,
               layers: dict[str, QgsRasterLayer | None]) -> tuple[list[tuple[str, Curve]], list[str]]:
    """The (role, curve) of every layer of ``layers`` (role -> layer, None skipped) at ``point`` given in
    ``crs``, and a message for every layer without a spectrum there. Curve labels: '<layer name> @ x, y'
    (the point in ``crs``)."""
    curves, messages = [], []
    where = format_point(point, crs)
    for role, layer in layers.items():
        if layer is None:
            continue
        if layer.providerType() != "gdal":
            messages.append(tr("{}: not a file raster.").format(layer.name()))
            continue
        try:
            local = point_in_layer_crs(point, crs, layer)
            spectrum = spectrum_at(layer.source(), local.x(), local.y())
        except QgsCsException:
            messages.append(tr(
                "{}: the point cannot be transformed to the layer's CRS.").format(layer.name()))
            continue
        except InputError as exc:
            messages.append(str(exc))
            continue
        curves.append((role, Curve(f"{layer.name()} @ {where}", spectrum)))
    return curves, messages


def fused_vs_reference(curves: list[tuple[str, Curve]]) -> tuple[float, float] | None:
    """SAM (degrees) and RMSE of the fused curve against the reference curve over the bands usable in both, when
    both are there, have the same number of bands and share a usable band."""
    by_role = dict(curves)
    fused, reference = by_role.get(FUSED), by_role.get(REFERENCE)
    if fused is None or reference is None or len(fused.spectrum.values) != len(reference.spectrum.values):
        return None
    both = fused.spectrum.usable & reference.spectrum.usable
    if not both.any():
        return None
    return compare(reference.spectrum.values[both], fused.spectrum.values[both])


def footprint(curve: Curve) -> QgsGeometry | None:
    """The polygon of the pixel ``curve`` was read from, in the CRS of its raster; None without a grid."""
    spectrum = curve.spectrum
    if spectrum.geotransform is None:
        return None
    corners = pixel_footprint(spectrum.geotransform, spectrum.col, spectrum.row)
    return QgsGeometry.fromPolygonXY([[QgsPointXY(x, y) for x, y in corners + corners[:1]]])
