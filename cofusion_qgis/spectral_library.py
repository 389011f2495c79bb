# SPDX-License-Identifier: GPL-2.0-or-later
"""The inspector's spectral library: the curves on the plot as features of a memory vector layer "CoFusion
spectra" in the project, one feature per curve.

A feature is the clicked point (point geometry in the library layer's CRS, the CRS of the canvas when the layer
was made) with the attributes ``point_id`` (a number unique in the library: every point sent gets the next one),
``point`` (its name on the plot, 'P1'), ``layer`` (the raster's layer name), ``role`` (fused, lrhsi, reference,
hrmsi), ``x`` / ``y`` (the point in the library layer's CRS) and ``spectrum``: the spectrum as a JSON string in
EnMAP-Box's spectral-profile form (``core.spectrum.profile_dict``: {"x": [...], "y": [...], "xUnit": "nm",
"yUnit": ..., "bbl": [...]}). A second send appends to the same layer while it is in the project.

EnMAP-Box: where it is installed (``import enmapbox`` succeeds), its spectral-library field type (a profile field
made by ``enmapbox.qgispluginsupport.qps.speclib.core.create_profile_field``, with the 'SpectralProfile' editor
widget) could hold the profiles, so that the layer opens as a spectral library with its profile plot at once. This
module does not depend on it: the JSON string is the same profile dictionary, which EnMAP-Box reads once the field
is set up as a profile field there.
"""
from __future__ import annotations

import json

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
)

from ..core.spectrum import profile_dict

LAYER_NAME = "CoFusion spectra"
#: Custom property marking the layers this module made (a layer of the same name made by someone else is left).
PROPERTY = "cofusion/spectral_library"
FIELDS = ("point_id:integer", "point:string", "layer:string", "role:string", "x:double", "y:double",
          "spectrum:string")


def library_layer(project: QgsProject, crs: QgsCoordinateReferenceSystem) -> tuple[QgsVectorLayer, bool]:
    """The project's "CoFusion spectra" layer made by this module, or a new memory layer in ``crs`` (not yet
    added to the project); and whether it is new."""
    for layer in project.mapLayersByName(LAYER_NAME):
        if isinstance(layer, QgsVectorLayer) and layer.isValid() and layer.customProperty(PROPERTY):
            return layer, False
    uri = "Point" + (f"?crs={crs.authid()}&" if crs.authid() else "?") + "&".join(f"field={f}" for f in FIELDS)
    layer = QgsVectorLayer(uri, LAYER_NAME, "memory")
    if crs.isValid():
        layer.setCrs(crs)
    layer.setCustomProperty(PROPERTY, True)
    return layer, True


def layer_name(label: str) -> str:
    """The layer name of a curve label '<layer name> @ x, y'."""
    return label.rsplit(" @ ", 1)[0]


def add_to_library(points: list, project: QgsProject | None = None) -> tuple[QgsVectorLayer | None, int]:
    """Append the curves of ``points`` (``spectra_plot.PlotPoint`` whose ``extra`` holds 'point', a QgsPointXY,
    and 'crs', its CRS) to the library layer, adding the layer to ``project`` (default: the current project) when
    it is new. Returns the layer (None when there is nothing to add) and the number of features added."""
    project = project or QgsProject.instance()
    points = [p for p in points if p.curves and "point" in p.extra]
    if not points:
        return None, 0
    layer, new = library_layer(project, points[0].extra["crs"])
    # the largest id so far (maximumValue of an empty memory layer is INT_MIN, of a NULL-only field NULL)
    largest = layer.maximumValue(layer.fields().indexOf("point_id")) if layer.featureCount() else 0
    next_id = max(largest if isinstance(largest, int) else 0, 0) + 1
    features = []
    for point in points:
        try:
            where = QgsCoordinateTransform(point.extra["crs"], layer.crs(), project).transform(
                QgsPointXY(point.extra["point"]))
        except QgsCsException:
            continue
        for role, curve in point.curves:
            feature = QgsFeature(layer.fields())
            feature.setGeometry(QgsGeometry.fromPointXY(where))
            feature.setAttributes([next_id, point.name, layer_name(curve.label), role, where.x(), where.y(),
                                   json.dumps(profile_dict(curve.spectrum), allow_nan=False)])
            features.append(feature)
        next_id += 1
    if not features:
        return (None if new else layer), 0
    layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    layer.triggerRepaint()
    if new:
        project.addMapLayer(layer)
    return layer, len(features)
