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

# Choices the parameters offer before the core can be imported (it needs the runtime dependencies); a test checks
# that they equal the core's: core.inference.DEVICES, core.classic.METHODS, core.align.RESAMPLING.
DEVICES = ("auto", "cpu", "cuda")
CLASSIC_METHODS = ("mtf_glp_hpm", "gsa", "sfim", "bicubic", "llr")
RESAMPLING = ("nearest", "bilinear", "cubic", "cubicspline", "lanczos", "average")


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


def choice_parameter(name: str, label: str, choices: tuple[str, ...],
                     default: str | None = None) -> QgsProcessingParameterEnum:
    """An enum whose values are the strings ``choices`` (scripts pass e.g. DEVICE=cpu); default the first."""
    return QgsProcessingParameterEnum(name, label, options=list(choices), defaultValue=default or choices[0],
                                      usesStaticStrings=True)


def optional_double(alg: QgsProcessingAlgorithm, parameters: dict, name: str,
                    context: QgsProcessingContext) -> float | None:
    """An optional number parameter: None when it was not given."""
    if parameters.get(name) in (None, ""):
        return None
    return alg.parameterAsDouble(parameters, name, context)


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
