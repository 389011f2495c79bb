# SPDX-License-Identifier: GPL-2.0-or-later
"""Rasters an algorithm writes, as they arrive in the project: each loads styled for what it is and named after its
inputs, uniquely per run (never two layers called "Fused hyperspectral raster").

An algorithm calls :func:`present` for each raster it wrote; when Processing is to load that file into the project
(the dialog's "Open output file after running", ``runAndLoadResults``), this sets the layer's name and a
post-processor that styles it once loaded: spectral rasters in true colour from their wavelengths
(``rendering.apply_true_color``), single-band maps with a colour ramp and legend (``rendering.apply_colour_ramp``).
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
)

from ..rendering import apply_colour_ramp, apply_true_color

SPECTRAL, MAP = "spectral", "map"

#: Post-processors handed to Processing, kept alive until it has used them (Processing calls them later, from the
#: main thread, and a Python object without a reference would be collected first).
_PENDING: set = set()


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Styles a loaded output: ``kind`` SPECTRAL (true colour) or MAP (colour ramp with legend)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def postProcessLayer(self, layer, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> None:  # noqa: N802
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            if self.kind == MAP:
                apply_colour_ramp(layer)
            else:
                from ...core.raster import read_info

                apply_true_color(layer, read_info(layer.source()).wavelengths_nm)
        _PENDING.discard(self)


def unique_name(title: str, project: QgsProject | None) -> str:
    """``title``, or ``title (2)``, ``title (3)``, ... : the first that no layer of ``project`` has."""
    taken = {layer.name() for layer in (project or QgsProject.instance()).mapLayers().values()}
    name, number = title, 1
    while name in taken:
        number += 1
        name = f"{title} ({number})"
    return name


def source_name(source: str, project: QgsProject | None) -> str:
    """How an input is called: the name of the project's layer of that file (an earlier result keeps its name),
    else the file's name without extension."""
    for layer in (project or QgsProject.instance()).mapLayers().values():
        if layer.source() == source:
            return layer.name()
    return Path(source).stem


def present(context: QgsProcessingContext, path: str, kind: str, title: str, source: str | None = None) -> None:
    """If Processing will load the raster at ``path``, name it ``title`` after ``source`` (an input, by
    ``source_name``), uniquely in the project, and style it as ``kind`` once loaded."""
    if not context.willLoadLayerOnCompletion(path):
        return
    details = context.layerToLoadOnCompletionDetails(path)
    project = details.project or context.project()
    label = f"{title} – {source_name(source, project)}" if source else title
    details.name = unique_name(label, project)
    details.forceName = True
    processor = StyleOnLoad(kind)
    _PENDING.add(processor)
    details.setPostProcessor(processor)
