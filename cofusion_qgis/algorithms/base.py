# SPDX-License-Identifier: GPL-2.0-or-later
"""The base class of every CoFusion Processing algorithm: ids, groups, help text, errors, dependency check."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)
from qgis.PyQt.QtCore import QCoreApplication, QUrl
from qgis.PyQt.QtGui import QIcon

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
#: Words users type into the Toolbox's search for this field (every algorithm has them) and for each group.
COMMON_TAGS = ("cofusion", "hyperspectral", "multispectral", "image fusion", "data fusion", "EnMAP", "PRISMA",
               "DESIS", "EMIT", "AVIRIS", "Sentinel-2", "Landsat", "imaging spectroscopy")
GROUP_TAGS = {
    FUSION: ("fusion", "pansharpening", "pan-sharpening", "sharpening", "hypersharpening", "super-resolution",
             "resolution enhancement", "downscaling", "HRHSI"),
    TRAINING: ("training", "deep learning", "neural network", "fine-tune", "super-resolution", "pansharpening"),
    SIMULATION: ("simulation", "Wald", "Wald's protocol", "degradation", "spectral response", "SRF", "MTF"),
    QUALITY: ("quality", "accuracy", "assessment", "metrics", "validation"),
}
ICONS = Path(__file__).resolve().parents[2] / "resources" / "icons"


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
    TAGS: tuple[str, ...] = ()  # the algorithm's own search words, besides its group's

    def name(self) -> str:
        return self.ID

    def displayName(self) -> str:  # noqa: N802 (QGIS API names)
        return self.tr(self.LABEL)

    def group(self) -> str:
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP

    def tags(self) -> list[str]:
        """What the Toolbox's search matches besides the name: the field's words, the group's and ``TAGS``."""
        return [self.tr(tag) for tag in (*COMMON_TAGS, *GROUP_TAGS[self.GROUP], *self.TAGS)]

    def icon(self) -> QIcon:
        return QIcon(self.svgIconPath())

    def svgIconPath(self) -> str:  # noqa: N802
        """The group's icon (resources/icons/<group>.svg)."""
        return str(ICONS / f"{self.GROUP}.svg")

    def helpUrl(self) -> str:  # noqa: N802
        """A local HTML page of the algorithm's help (its description, every parameter, the reference), written
        once per session into the temporary folder: the dialog's Help button opens it in the browser."""
        page = Path(QgsProcessingUtils.tempFolder()) / f"cofusion_{self.ID}_help.html"
        if not page.exists():
            page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{self.displayName()}"
                            f"</title></head><body><h1>{self.displayName()}</h1>{self.shortHelpString()}"
                            f"<p>Algorithm id: <code>cofusion:{self.ID}</code> (<code>qgis_process help "
                            f"cofusion:{self.ID}</code>).</p></body></html>", encoding="utf-8")
        return QUrl.fromLocalFile(str(page)).toString()

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

    def preprocessParameters(self, parameters: dict) -> dict:  # noqa: N802
        """Choices given by number: a static-string choice (METHOD, DEVICE, ...) also takes the 0-based number of
        the option, which is what ``qgis_process help`` offers ('Number of selected option, e.g. 1')."""
        values = dict(parameters)
        for definition in self.parameterDefinitions():
            value = values.get(definition.name())
            if isinstance(definition, QgsProcessingParameterEnum) and definition.usesStaticStrings() and \
                    _option_number(value, len(definition.options())) is not None and \
                    str(value) not in definition.options():
                values[definition.name()] = definition.options()[_option_number(value, len(definition.options()))]
        return values

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:  # noqa: N802
        """QGIS's check of every parameter's value, but for rasters given as file paths, which are not loaded as
        QGIS layers to be checked (``params.raster_file_value``: that would write statistics into a VRT input);
        the core's reading checks them, with its own messages. Choices given by number count as their option
        (``preprocessParameters``)."""
        parameters = self.preprocessParameters(parameters)
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
        parameters = self.preprocessParameters(parameters)  # whether or not the caller did
        try:
            with forward_log(feedback.pushInfo, feedback.pushWarning):
                return self.execute(parameters, context, feedback)
        except CoFusionError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def execute(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:
        """The algorithm's work: parameters -> one core call -> the results dict."""
        raise NotImplementedError


def _option_number(value: object, count: int) -> int | None:
    """``value`` as the 0-based number of one of ``count`` options (an int, or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        return number if 0 <= number < count else None
    return None
