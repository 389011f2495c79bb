# SPDX-License-Identifier: GPL-2.0-or-later
"""Parameter handling shared by the algorithms: the declarations of the parameters two or more algorithms take
(same name, label and constraints everywhere, which models and qgis_process scripts rely on), rasters by path,
optional numbers, the MSI spectral response, feedback."""
from __future__ import annotations

import os
from collections.abc import Callable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ...core.device import DEVICES
from ...core.grid import bounds_window, check_coregistration
from ...core.raster import read_info
from ...core.scale import MAX_SCALE, MIN_SCALE
from ...core.window import Window

# The classical methods' names, which the parameters offer before core.classic can be imported (it needs PyTorch,
# a runtime dependency); a test checks that they equal core.classic.METHODS.
CLASSIC_METHODS = ("mtf_glp_hpm", "gsa", "sfim", "bicubic", "llr", "blend")


def raster_file_value(parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
    """The value of raster parameter ``name`` when it is the path of a file (not a layer of the project), else None.

    Such a raster is read by the core only and never loaded as a QGIS layer: QGIS computes a new layer's
    statistics for its default style, and GDAL stores them in the dataset's own file when that is a VRT, so
    loading a VRT input would modify it.
    """
    value = parameters.get(name)
    if not isinstance(value, str) or not value:
        return None
    project = context.project()
    if project is not None and project.mapLayer(value) is not None:
        return None
    return value if os.path.isfile(value) else None


def raster_path(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext) -> str:
    """The file of raster parameter ``name`` (a layer of the project or a path); the core reads it by path.

    A path is returned as given (``raster_file_value``; the core's reading checks it); a layer must be a GDAL
    file raster."""
    path = raster_file_value(parameters, name, context)
    if path is not None:
        return path
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


SRF_HELP = ("The multispectral sensor: a preset with optional bands, e.g. 'sentinel2a:B2,B3,B4,B8' or "
            "'enmap:B1-B130' (the list shows every preset; hover over one for its bands and wavelengths), or the "
            "path of a spectral response CSV ('CSV file…' opens one; band,wavelength_nm,response).")


def srf_parameter(name: str, label: str, default: str | None = None,
                  optional: bool = False) -> QgsProcessingParameterString:
    """The MSI spectral response: a string parameter taking any ``core.srf.parse_srf`` specification (so scripts,
    models and qgis_process pass e.g. SRF=sentinel2a:B2,B3,B4,B8 or a CSV path), which the dialogs show as an
    editable list of the presets with 'CSV file…' last (``srf_widget.SrfWidgetWrapper``, imported by
    Processing's dialogs only)."""
    parameter = QgsProcessingParameterString(name, label, defaultValue=default, optional=optional)
    parameter.setMetadata({"widget_wrapper": {"class": f"{__package__}.srf_widget.SrfWidgetWrapper"}})
    return parameter


#: ``tr``: the algorithm's ``tr`` (``CoFusionAlgorithm.tr``), which translates a label.
Translate = Callable[[str], str]

#: The choices of DEVICE, for its help after "Where ... runs: ".
DEVICE_HELP = "auto (a CUDA GPU when present, else the CPU), cpu or cuda."
#: The inputs' help where a network fuses them ('Fuse', 'Fit a model on the pair and fuse').
LRHSI_HELP = "The LRHSI (e.g. EnMAP, PRISMA), with its band wavelengths in the metadata."
HRMSI_HELP = ("The HRMSI (e.g. Sentinel-2) on a grid that subdivides the LRHSI's grid an integer number of times "
              "(use 'Align to LRHSI grid' first if it does not).")


def lrhsi_parameter(name: str, tr: Translate, optional: bool = False) -> QgsProcessingParameterRasterLayer:
    """The low-resolution hyperspectral input raster."""
    return QgsProcessingParameterRasterLayer(name, tr("Low-resolution hyperspectral raster"), optional=optional)


def hrmsi_parameter(name: str, tr: Translate, optional: bool = False) -> QgsProcessingParameterRasterLayer:
    """The high-resolution multispectral input raster."""
    return QgsProcessingParameterRasterLayer(name, tr("High-resolution multispectral raster"), optional=optional)


def reference_parameter(name: str, tr: Translate, optional: bool = False) -> QgsProcessingParameterRasterLayer:
    """The high-resolution hyperspectral reference raster (Wald's protocol)."""
    return QgsProcessingParameterRasterLayer(name, tr("Hyperspectral reference raster"), optional=optional)


def fused_parameter(name: str, tr: Translate) -> QgsProcessingParameterRasterLayer:
    """A fused raster to assess."""
    return QgsProcessingParameterRasterLayer(name, tr("Fused raster"))


def fused_output_parameter(name: str, tr: Translate) -> QgsProcessingParameterRasterDestination:
    """The fused hyperspectral GeoTIFF a fusion writes."""
    return QgsProcessingParameterRasterDestination(name, tr("Fused hyperspectral raster"))


def scale_parameter(name: str, tr: Translate, optional: bool = False) -> QgsProcessingParameterNumber:
    """The scale factor (HR pixels per LR pixel along each axis), MIN_SCALE to MAX_SCALE; default 4, none when
    ``optional``."""
    return QgsProcessingParameterNumber(name, tr("Scale factor"), minValue=MIN_SCALE, maxValue=MAX_SCALE,
                                        defaultValue=None if optional else 4, optional=optional)


def fuse_area_parameter(name: str, tr: Translate) -> QgsProcessingParameterExtent:
    """The optional extent a fusion is restricted to."""
    return QgsProcessingParameterExtent(name, tr("Area to fuse"), optional=True)


def training_area_parameter(name: str, tr: Translate) -> QgsProcessingParameterExtent:
    """The optional extent a training is restricted to."""
    return QgsProcessingParameterExtent(name, tr("Training area"), optional=True)


def tile_size_parameter(name: str, tr: Translate) -> QgsProcessingParameterNumber:
    """The optional edge of the model's tiles, in HR pixels (at least 16)."""
    return QgsProcessingParameterNumber(name, tr("Tile size (HR pixels)"), minValue=16, optional=True)


def overlap_parameter(name: str, tr: Translate) -> QgsProcessingParameterNumber:
    """The optional overlap of neighbouring tiles, in HR pixels."""
    return QgsProcessingParameterNumber(name, tr("Tile overlap (HR pixels)"), minValue=0, optional=True)


def fine_tune_parameter(name: str, tr: Translate) -> QgsProcessingParameterFile:
    """The optional CoFusion model (.safetensors) a training starts from."""
    return QgsProcessingParameterFile(name, tr("Model to fine-tune"), extension="safetensors", optional=True)


def threads_parameter(name: str, tr: Translate) -> QgsProcessingParameterNumber:
    """The optional number of CPU threads (at least 1)."""
    return QgsProcessingParameterNumber(name, tr("CPU threads"), minValue=1, optional=True)


def device_parameter(name: str, tr: Translate) -> QgsProcessingParameterEnum:
    """The device the network runs on, one of ``core.device.DEVICES`` (default the first, auto); help: "Where ...
    runs: " + DEVICE_HELP."""
    return choice_parameter(name, tr("Device"), DEVICES)


def html_report_parameter(name: str, tr: Translate) -> QgsProcessingParameterFileDestination:
    """The HTML report a quality assessment writes."""
    return QgsProcessingParameterFileDestination(name, tr("HTML report"), fileFilter="HTML files (*.html)")


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


def output_extent_window(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext,
                         lrhsi: str, hrmsi: str) -> Window | None:
    """Extent parameter ``name`` as a window of the fusion's output grid (the HRMSI's pixels of the area both
    inputs cover, ``core.grid.FusionGrid``), or None when it is empty; errors as ``extent_window``."""
    if parameters.get(name) in (None, ""):
        return None
    grid = check_coregistration(read_info(lrhsi), read_info(hrmsi))
    extent = alg.parameterAsExtent(parameters, name, context, QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt))
    return bounds_window(grid.geotransform, grid.hr_window.width, grid.hr_window.height,
                         (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()),
                         "the area the LRHSI and the HRMSI share")


def extent_window(alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext,
                  raster: str) -> Window | None:
    """Extent parameter ``name`` as the window of ``raster``'s pixels it covers (pixels partly inside count), or
    None when it is empty. The extent may be in any CRS (QGIS transforms it to the raster's). GridError when the
    raster's grid is rotated or the extent does not overlap the raster."""
    if parameters.get(name) in (None, ""):
        return None
    info = read_info(raster)
    extent = alg.parameterAsExtent(parameters, name, context, QgsCoordinateReferenceSystem.fromWkt(info.crs_wkt))
    return bounds_window(info.geotransform, info.width, info.height,
                         (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()), info.path)
