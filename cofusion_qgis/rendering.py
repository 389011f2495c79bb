# SPDX-License-Identifier: GPL-2.0-or-later
"""True-colour display of a hyperspectral raster layer: the bands nearest 640/550/460 nm as red/green/blue,
each stretched from its 2 % to its 98 % cumulative count (QGIS's cumulative cut, so the layer properties show
the same stretch and the user can change it there)."""
from __future__ import annotations

from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
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
