# SPDX-License-Identifier: GPL-2.0-or-later
"""The Processing provider "CoFusion" (id ``cofusion``): lists its algorithm instances explicitly."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.align_to_grid import AlignToGridAlgorithm
from .algorithms.assess import AssessAlgorithm
from .algorithms.assess_qnr import AssessQnrAlgorithm
from .algorithms.assign_wavelengths import AssignWavelengthsAlgorithm
from .algorithms.fuse import FuseAlgorithm
from .algorithms.fuse_classic import FuseClassicAlgorithm
from .algorithms.simulate import SimulateAlgorithm
from .algorithms.train import TrainAlgorithm

ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"


class CoFusionProvider(QgsProcessingProvider):
    """Fusion, training, simulation and quality algorithms; outputs are GeoTIFF files."""

    def id(self) -> str:
        return "cofusion"

    def name(self) -> str:
        return "CoFusion"

    def longName(self) -> str:  # noqa: N802 (QGIS API names)
        return "CoFusion hyperspectral / multispectral image fusion"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:  # noqa: N802
        return str(ICON)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in (FuseAlgorithm(), FuseClassicAlgorithm(), AlignToGridAlgorithm(),
                          AssignWavelengthsAlgorithm(), TrainAlgorithm(), SimulateAlgorithm(), AssessAlgorithm(),
                          AssessQnrAlgorithm()):
            self.addAlgorithm(algorithm)
