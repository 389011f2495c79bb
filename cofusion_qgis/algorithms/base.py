# SPDX-License-Identifier: GPL-2.0-or-later
"""The base class of every CoFusion Processing algorithm: ids, groups, help text, errors, dependency check."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ...core.errors import CoFusionError
from ..core_log import forward_log
from ..environment import require_dependencies
from .params import raster_file_value

#: The paper every help text cites (its text names no authors).
PAPER = ("CoFusion: a unified spatial-spectral collaborative fusion framework that explicitly models cross-scale "
         "and cross-modal dependencies for multispectral and hyperspectral image fusion (MHIF).")

#: Group ids and labels of the Toolbox.
FUSION, TRAINING, SIMULATION, QUALITY = "fusion", "training", "simulation", "quality"
GROUPS = {FUSION: "Fusion", TRAINING: "Training", SIMULATION: "Simulation (Wald's protocol)", QUALITY: "Quality"}


class CoFusionAlgorithm(QgsProcessingAlgorithm):
    """A CoFusion algorithm: subclasses set ``ID`` (the fixed id), ``LABEL``, ``GROUP`` (a key of GROUPS) and
    ``DESCRIPTION``, declare parameters with :meth:`add` in ``initAlgorithm`` and implement :meth:`execute`.

    ``processAlgorithm`` checks the runtime dependencies, shows the core's log (bad bands left out, a cut response)
    in the run's log (``core_log.forward_log``) and turns the core's errors (CoFusionError, Canceled included) into
    QgsProcessingException with the same message, which Processing shows as the run's error.
    """

    ID = ""
    LABEL = ""
    GROUP = FUSION
    DESCRIPTION = ""

    def name(self) -> str:
        return self.ID

    def displayName(self) -> str:  # noqa: N802 (QGIS API names)
        return self.tr(self.LABEL)

    def group(self) -> str:
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP

    def tags(self) -> list[str]:
        return ["cofusion", "hyperspectral", "multispectral", "fusion", self.GROUP]

    def shortHelpString(self) -> str:  # noqa: N802
        """The description, then every parameter's label and help (the same strings the dialog shows), then
        the paper reference."""
        items = "".join(f"<li><b>{p.description()}</b> ({p.name()}): {p.help()}</li>"
                        for p in self.parameterDefinitions())
        return (f"<p>{self.tr(self.DESCRIPTION)}</p><ul>{items}</ul>"
                f"<p>Reference: {PAPER}</p>")

    def createInstance(self) -> CoFusionAlgorithm:  # noqa: N802
        return type(self)()

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("CoFusion", text)

    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False) -> None:
        """Add ``parameter`` with its help text (shown in the dialog and in the help), optionally advanced."""
        parameter.setHelp(self.tr(help_text))
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:  # noqa: N802
        """QGIS's check of every parameter's value, but for rasters given as file paths, which are not loaded as
        QGIS layers to be checked (``params.raster_file_value``: that would write statistics into a VRT input);
        the core's reading checks them, with its own messages."""
        for definition in self.parameterDefinitions():
            name = definition.name()
            if isinstance(definition, QgsProcessingParameterRasterLayer) and \
                    raster_file_value(parameters, name, context) is not None:
                continue
            if not definition.checkValueIsAcceptable(parameters.get(name), context):
                if isinstance(definition, QgsProcessingParameterRasterLayer):
                    return False, self.invalidRasterError(parameters, name)
                return False, self.tr("Incorrect parameter value for {}").format(name)
        return True, ""

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict:
        require_dependencies()
        try:
            with forward_log(feedback.pushInfo, feedback.pushWarning):
                return self.execute(parameters, context, feedback)
        except CoFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def execute(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        """The algorithm's work: parameters -> one core call -> the results dict."""
        raise NotImplementedError
