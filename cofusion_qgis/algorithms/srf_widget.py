# SPDX-License-Identifier: GPL-2.0-or-later
"""The dialog widget of the MSI spectral response parameter (``params.srf_parameter``): an editable list of the
sensor presets with 'CSV file…' last.

The parameter stays a string, so whatever is typed (a band list such as ``sentinel2a:B2,B3``, a CSV path) is
passed on as is; picking 'CSV file…' opens a file dialog and puts the chosen path in the field. In the model
designer the list also offers the model's string and file inputs. Processing's dialogs import this module through
the parameter's ``widget_wrapper`` metadata; nothing else does (it needs Processing's GUI).
"""
from __future__ import annotations

from processing.gui.wrappers import DIALOG_MODELER, WidgetWrapper
from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog

from ...core.srf import describe_presets

CSV_ENTRY = "CSV file…"


class SrfWidgetWrapper(WidgetWrapper):
    """Processing's (Python) widget wrapper for a spectral response parameter: an editable combo box."""

    def createWidget(self) -> QComboBox:  # noqa: N802 (Processing API name)
        combo = QComboBox()
        combo.setEditable(True)
        if self.dialogType == DIALOG_MODELER:
            for source in self.dialog.getAvailableValuesOfType(
                    [QgsProcessingParameterString, QgsProcessingParameterFile],
                    [QgsProcessingOutputString, QgsProcessingOutputFile]):
                combo.addItem(self.dialog.resolveValueDescription(source), source)
        for name, line in describe_presets().items():
            combo.addItem(name, name)
            combo.setItemData(combo.count() - 1, line, Qt.ItemDataRole.ToolTipRole)
        combo.addItem(CSV_ENTRY, CSV_ENTRY)
        combo.setItemData(combo.count() - 1, "Choose a CSV of spectral responses (band,wavelength_nm,response)",
                          Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(-1)
        self._typed = ""
        combo.editTextChanged.connect(self._remember)
        combo.activated.connect(self._picked)
        return combo

    def _remember(self, text: str) -> None:
        if text != CSV_ENTRY:
            self._typed = text

    def _picked(self, index: int) -> None:
        if self.widget.itemData(index) != CSV_ENTRY:
            return
        previous = self._typed
        path, _ = QFileDialog.getOpenFileName(self.widget, self.tr("Spectral response CSV"), "",
                                              self.tr("CSV files (*.csv);;All files (*)"))
        self.widget.setCurrentIndex(-1)
        self.widget.setEditText(path or previous)

    def setValue(self, value) -> None:  # noqa: N802 (Processing API name)
        self.setComboValue(value)

    def value(self):
        text = self.widget.currentText().strip()
        if text == CSV_ENTRY:
            return None
        return self.comboValue() if self.dialogType == DIALOG_MODELER else text or None
