# SPDX-License-Identifier: GPL-2.0-or-later
"""The Processing provider "CoFusion" (id ``cofusion``): lists its algorithm instances explicitly, and the
graphical-modeler models shipped in resources/ (built by tools/build_wald_model.py)."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.align_to_grid import AlignToGridAlgorithm
from .algorithms.assess import AssessAlgorithm
from .algorithms.assess_pair import AssessPairAlgorithm
from .algorithms.assess_qnr import AssessQnrAlgorithm
from .algorithms.assign_wavelengths import AssignWavelengthsAlgorithm
from .algorithms.batch import BatchFuseAlgorithm
from .algorithms.fit_fuse import FitAndFuseAlgorithm
from .algorithms.fuse import FuseAlgorithm
from .algorithms.fuse_classic import FuseClassicAlgorithm
from .algorithms.simulate import SimulateAlgorithm
from .algorithms.train import TrainAlgorithm

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICON = RESOURCES / "icon.svg"
#: The shipped models, and the defaults that point them at the bundled sample scene (paths of this install).
MODELS = {RESOURCES / "wald_benchmark.model3": {"REFERENCE": RESOURCES / "sample" / "reference.tif"}}


class CoFusionProvider(QgsProcessingProvider):
    """Fusion, training, simulation and quality algorithms; outputs are GeoTIFF files."""

    def __init__(self) -> None:
        super().__init__()
        self.algorithmsLoaded.connect(self.attach_models)  # a refresh of the registered provider

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
        for algorithm in (FuseAlgorithm(), FitAndFuseAlgorithm(), FuseClassicAlgorithm(), AlignToGridAlgorithm(),
                          AssignWavelengthsAlgorithm(), TrainAlgorithm(), SimulateAlgorithm(), AssessAlgorithm(),
                          AssessQnrAlgorithm(), BatchFuseAlgorithm(), AssessPairAlgorithm()):
            self.addAlgorithm(algorithm)
        for path, defaults in MODELS.items():
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)):
                for name, value in defaults.items():
                    model.parameterDefinition(name).setDefaultValue(str(value))
                self.addAlgorithm(model)

    def attach_models(self) -> None:
        """Point the shipped models' steps at this provider's algorithms, once the registry has them. A model read
        in ``loadAlgorithms`` finds none (they are registered only after the provider is), and QGIS would show
        its steps as unavailable; call this after adding the provider to the registry."""
        for algorithm in self.algorithms():
            if isinstance(algorithm, QgsProcessingModelAlgorithm):
                for child_id in algorithm.childAlgorithms():
                    algorithm.childAlgorithm(child_id).reattach()
                algorithm.updateDestinationParameters()  # the outputs, which only attached steps can declare
