# SPDX-License-Identifier: GPL-2.0-or-later
"""The dependency installer dialog: choose the PyTorch build, run pip in a background task, show its output."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from . import dependencies

BUILDS = {"cpu": "CPU only (works everywhere, smaller download)", "cuda": "CUDA (NVIDIA GPU with a recent driver)"}


class InstallTask(QgsTask):
    """Runs ``dependencies.install`` off the main thread; pip's lines arrive through the ``line`` signal."""

    line = pyqtSignal(str)

    def __init__(self, target: Path, variant: str) -> None:
        super().__init__("Installing CoFusion dependencies", QgsTask.CanCancel)
        self.target, self.variant = target, variant
        self.error: str | None = None

    def run(self) -> bool:
        absent = dependencies.missing(dependencies.read_requirements())
        try:
            dependencies.install(absent, self.target, self.variant, output=self.line.emit, cancel=self.isCanceled)
        except (dependencies.InstallError, OSError) as exc:
            self.error = str(exc)
            return False
        return True


class InstallDialog(QDialog):
    """Says what is missing, lets the user pick CPU or CUDA PyTorch, and installs into ``target``."""

    def __init__(self, target: Path, parent=None) -> None:
        super().__init__(parent)
        self.target, self.task = target, None
        self.setWindowTitle("CoFusion: install dependencies")
        absent = dependencies.missing(dependencies.read_requirements())
        text = (f"Missing: {', '.join(r.spec for r in absent)}." if absent else "All dependencies are installed.")
        self.build = QComboBox()
        for key, label in BUILDS.items():
            self.build.addItem(label, key)
        self.log = QPlainTextEdit(readOnly=True)
        self.install = QPushButton("Install")
        self.install.setEnabled(bool(absent))
        self.install.clicked.connect(self.start)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.install, QDialogButtonBox.ActionRole)
        layout = QVBoxLayout(self)
        for widget in (QLabel(f"{text}\nPackages are installed with pip into {target}."), QLabel("PyTorch build:"),
                       self.build, self.log, buttons):
            layout.addWidget(widget)

    def start(self) -> None:
        self.install.setEnabled(False)
        self.task = InstallTask(self.target, self.build.currentData())
        self.task.line.connect(self.log.appendPlainText)
        self.task.taskCompleted.connect(self.done_ok)
        self.task.taskTerminated.connect(self.failed)
        QgsApplication.taskManager().addTask(self.task)

    def done_ok(self) -> None:
        dependencies.activate(self.target)
        self.log.appendPlainText("Done: the CoFusion algorithms are ready (restart QGIS if one still complains).")

    def failed(self) -> None:
        self.log.appendPlainText(self.task.error or "The installation was canceled.")
        self.install.setEnabled(True)

    def reject(self) -> None:
        if self.task is not None and self.task.status() == QgsTask.Running:
            self.task.cancel()
        super().reject()
