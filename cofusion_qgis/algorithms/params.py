# SPDX-License-Identifier: GPL-2.0-or-later
"""Parameter handling shared by the algorithms: rasters by path, optional numbers, devices, feedback."""
from __future__ import annotations

from collections.abc import Callable

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
)

#: Where a model runs (core.inference.DEVICES, repeated here because the core loads PyTorch).
DEVICES = ("auto", "cpu", "cuda")


def raster_path(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext) -> str:
    """The file of raster parameter ``name`` (a layer of the project or a path); the core reads it by path."""
    layer = alg.parameterAsRasterLayer(parameters, name, context)
    if layer is None or not layer.isValid():
        raise QgsProcessingException(f"{name}: the raster {parameters.get(name)!r} cannot be opened; give an "
                                     "existing raster file or a raster layer of the project.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"{name}: layer '{layer.name()}' is not a file raster (provider "
                                     f"{layer.providerType()}); save it as a GeoTIFF first.")
    return layer.source()


def output_raster(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext) -> str:
    """The GeoTIFF path of raster destination ``name`` (a temporary file for TEMPORARY_OUTPUT)."""
    return alg.parameterAsOutputLayer(parameters, name, context)


def optional_int(alg: QgsProcessingAlgorithm, parameters: dict, name: str,
                 context: QgsProcessingContext) -> int | None:
    """An optional integer parameter: None when it was not given."""
    if parameters.get(name) in (None, ""):
        return None
    return alg.parameterAsInt(parameters, name, context)


def device_parameter(name: str, label: str) -> QgsProcessingParameterEnum:
    """An enum of DEVICES (string values, default 'auto')."""
    return QgsProcessingParameterEnum(name, label, options=list(DEVICES), defaultValue=DEVICES[0],
                                      usesStaticStrings=True)


def progress(feedback: QgsProcessingFeedback) -> Callable[[float, str], None]:
    """The core's ``progress(fraction, message)`` callable reporting to ``feedback`` (percent and text; the text
    only when it changes in more than its numbers, so the log does not get a line per tile)."""
    last = [""]

    def report(fraction: float, message: str) -> None:
        feedback.setProgress(100.0 * fraction)
        kind = "".join(c for c in message if not c.isdigit())
        if kind != last[0]:
            last[0] = kind
            feedback.setProgressText(message)

    return report
