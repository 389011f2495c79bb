# SPDX-License-Identifier: GPL-2.0-or-later
"""What part of a pair the dock fuses, and the same fusion as a ``qgis_process`` command line.

The area is the whole scene, the map canvas's extent, or the bounding box of the features selected in the
project's vector layers; it becomes a window of the fusion's output grid (``core.grid.bounds_window``), whose pixels
equal those of a whole run. The command runs ``cofusion:fuse`` with the request's values, the area as its REGION.
"""
from __future__ import annotations

import os
import shlex
import subprocess

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingException,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas

from ..core.errors import CoFusionError
from ..core.grid import FusionGrid, bounds_window, check_coregistration
from ..core.raster import read_info
from ..core.service import FusionRequest
from ..core.window import Window
from .i18n import tr

WHOLE, MAP_EXTENT, SELECTION = "whole", "map", "selection"
#: The choices of the panel's Area box: (key, label).
AREAS = ((WHOLE, tr("Whole scene")), (MAP_EXTENT, tr("Map extent")), (SELECTION, tr("Selected features")))


def area_rectangle(area: str, crs: QgsCoordinateReferenceSystem, canvas: QgsMapCanvas | None) -> QgsRectangle | None:
    """The rectangle of ``area`` in ``crs`` (None for the whole scene); QgsProcessingException when there is no
    canvas or no selected feature to take it from."""
    project = QgsProject.instance()
    if area == WHOLE:
        return None
    if area == MAP_EXTENT:
        if canvas is None:
            raise QgsProcessingException(tr("There is no map canvas to take the extent from."))
        transform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), crs, project)
        return transform.transformBoundingBox(canvas.extent())
    box = QgsRectangle()
    box.setMinimal()
    for layer in project.mapLayers().values():
        if isinstance(layer, QgsVectorLayer) and layer.selectedFeatureCount():
            transform = QgsCoordinateTransform(layer.crs(), crs, project)
            box.combineExtentWith(transform.transformBoundingBox(layer.boundingBoxOfSelected()))
    if box.isEmpty():
        raise QgsProcessingException(tr("No feature is selected: select the polygon(s) to fuse under, or choose "
                                        "another area."))
    return box


def fusion_grid(lrhsi: str, hrmsi: str) -> FusionGrid:
    """The output grid of a pair (the core's check; its error as a QgsProcessingException)."""
    try:
        return check_coregistration(read_info(lrhsi), read_info(hrmsi))
    except CoFusionError as exc:
        raise QgsProcessingException(str(exc)) from exc


def area_window(area: str, grid: FusionGrid, canvas: QgsMapCanvas | None) -> Window | None:
    """``area`` as a window of ``grid`` (None: the whole scene)."""
    rectangle = area_rectangle(area, QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt), canvas)
    if rectangle is None:
        return None
    try:
        return bounds_window(grid.geotransform, grid.hr_window.width, grid.hr_window.height,
                             (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum()),
                             tr("the area the LRHSI and the HRMSI share"))
    except CoFusionError as exc:
        raise QgsProcessingException(str(exc)) from exc


def _quote(text: str) -> str:
    """``text`` as one argument of this platform's shell (cmd.exe's rules on Windows)."""
    return subprocess.list2cmdline([text]) if os.name == "nt" else shlex.quote(text)


def qgis_process_command(request: FusionRequest, grid: FusionGrid | None = None, output: str = "") -> str:
    """The ``qgis_process`` command line that makes the same fusion as ``request``: its window (with ``grid``) as
    REGION, ``output`` as OUTPUT (empty: TEMPORARY_OUTPUT)."""
    values = {"LRHSI": str(request.lrhsi), "HRMSI": str(request.hrmsi), "OUTPUT": output or "TEMPORARY_OUTPUT",
              "MODEL": request.model, "DEVICE": request.device, "TILE_SIZE": request.tile,
              "OVERLAP": request.overlap, "BATCH_SIZE": request.batch}
    if request.region is not None and grid is not None:
        x0, dx, _, y0, _, dy = grid.geotransform
        window = request.region
        xs = sorted((x0 + window.col * dx, x0 + window.col_end * dx))
        ys = sorted((y0 + window.row * dy, y0 + window.row_end * dy))
        crs = QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt).authid()
        values["REGION"] = f"{xs[0]:.10g},{xs[1]:.10g},{ys[0]:.10g},{ys[1]:.10g}" + (f" [{crs}]" if crs else "")
    arguments = [f"{name}={value}" for name, value in values.items() if value not in (None, "")]
    return "qgis_process run cofusion:fuse -- " + " ".join(_quote(argument) for argument in arguments)
