# SPDX-License-Identifier: GPL-2.0-or-later
"""How the plugin's rasters are shown: true colour for spectral rasters (the bands nearest 640/550/460 nm as
red/green/blue, each stretched from its 2 % to its 98 % cumulative count: QGIS's cumulative cut, so the layer
properties show the same stretch and the user can change it there), and a colour ramp with its legend for
single-band maps (the SAM map, in degrees)."""
from __future__ import annotations

from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)

from ..core.spectrum import nearest_bands


def apply_true_color(layer: QgsRasterLayer, wavelengths_nm: tuple[float, ...] | None) -> tuple[int, int, int]:
    """Give ``layer`` a multiband colour renderer on the bands nearest true colour (bands 1-3 when the raster
    has no wavelengths) with a 2-98 % cumulative-cut stretch; returns the 1-based (red, green, blue) bands.
    A layer with fewer than three bands keeps its renderer and gets (0, 0, 0)."""
    if layer.bandCount() < 3:
        return 0, 0, 0
    red, green, blue = nearest_bands(wavelengths_nm) or (1, 2, 3)
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.CumulativeCut, layer.extent())
    layer.triggerRepaint()
    return red, green, blue


#: The colour ramp of single-band maps: perceptually uniform, readable in grey, for colour-blind users too.
MAP_RAMP = "Magma"
#: Classes of a map's legend.
MAP_CLASSES = 8


def apply_colour_ramp(layer: QgsRasterLayer, ramp: str = MAP_RAMP) -> tuple[float, float]:
    """Give single-band ``layer`` a pseudocolour renderer: ``ramp`` (a QGIS default-style ramp) interpolated from
    the band's minimum to its maximum, with ``MAP_CLASSES`` legend entries; returns (minimum, maximum)."""
    stats = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
    low, high = float(stats.minimumValue), float(stats.maximumValue)
    if not high > low:
        high = low + 1.0
    shader_function = QgsColorRampShader(low, high, QgsStyle.defaultStyle().colorRamp(ramp),
                                         QgsColorRampShader.Type.Interpolated)
    shader_function.classifyColorRamp(MAP_CLASSES, 1, layer.extent(), layer.dataProvider())
    shader = QgsRasterShader(low, high)
    shader.setRasterShaderFunction(shader_function)
    layer.setRenderer(QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader))
    layer.triggerRepaint()
    return low, high
