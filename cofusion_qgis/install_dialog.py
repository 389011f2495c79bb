# SPDX-License-Identifier: GPL-2.0-or-later
"""The dependency installer dialog: what is missing, the download size, the pip command, plain-words progress.

Everything runs in a separate process of QGIS's own Python: ``dependencies.py plan`` (what to download and its
size, asked from the index without downloading), ``dependencies.py install`` (prune, pip with ``--no-deps`` and
QGIS's versions as constraints, then an import check) and ``dependencies.py check``. The dialog owns its QProcess
(a Python reference, no QgsTask the task manager deletes behind its back), reads the script's event lines
(``dependencies.EVENT``) and pip's lines (the details), and disconnects from the process when it ends. Cancel
closes the script's stdin: the script stops pip and exits (killed if it has not after a few seconds). The dialog is
not modal: QGIS stays usable during a long download; Close or Esc while installing stops the installation.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from . import dependencies
from .i18n import tr

BUILDS = {"cpu": "CPU only (works everywhere, smaller download)", "cuda": "CUDA (NVIDIA GPU with a recent driver)"}
SETTINGS = "CoFusion/installer/"
SCRIPT = Path(dependencies.__file__).resolve()
#: Seconds a stopped script gets to stop pip before it is killed.
STOP_GRACE_S = 8


def command_line(command) -> str:
    """A command as the user's shell would take it."""
    return subprocess.list2cmdline(command) if os.name == "nt" else " ".join(shlex.quote(a) for a in command)


class InstallDialog(QDialog):
    """Says what is missing and why, lets the user pick CPU or CUDA PyTorch and the package indexes (or a folder
    of wheels), states the download size and the pip commands, and installs into ``target``. Emits ``installed``
    after an installation whose packages all import."""

    installed = pyqtSignal()

    def __init__(self, target: Path, parent=None, *, python: str | None = None) -> None:
        super().__init__(parent)
        self.target, self.python = Path(target), python or dependencies.interpreter()
        self.process: QProcess | None = None
        self.mode = ""  # what the process does: 'plan', 'install' or 'check'
        self.buffer = b""
        self.outcome: dict | None = None  # the last 'done' / 'failed' / 'canceled' event of an installation
        self.plan: dict | None = None
        self.broken: dict[str, tuple[dependencies.Requirement, str]] = {}  # found but failing to import: error
        self.setWindowTitle(tr("CoFusion: install dependencies"))
        self.setMinimumWidth(620)
        self.resize(700, 640)
        settings = QgsSettings()

        self.state = QLabel()
        self.state.setWordWrap(True)
        self.state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.build = QComboBox()
        for key, label in BUILDS.items():
            self.build.addItem(tr(label), key)
        self.build.setCurrentIndex(max(0, self.build.findData(settings.value(SETTINGS + "build", "cpu", type=str))))
        self.torch_index = QLineEdit()
        self.torch_index.setToolTip(tr("The package index PyTorch's chosen build comes from (PyTorch's own index "
                                       "by default; a mirror or company index works too)."))
        self.index = QLineEdit(settings.value(SETTINGS + "index", dependencies.PYPI, type=str))
        self.index.setToolTip(tr("The package index of every other package."))
        self.wheels = QgsFileWidget()
        self.wheels.setStorageMode(QgsFileWidget.GetDirectory)
        self.wheels.setFilePath(settings.value(SETTINGS + "wheels", "", type=str))
        self.wheels.lineEdit().setPlaceholderText(tr("none: download from the indexes"))
        self.wheels.setToolTip(tr("A folder of wheel files to install from without a network (pip --no-index "
                                  "--find-links)."))
        form = QFormLayout()
        form.addRow(tr("PyTorch build"), self.build)
        form.addRow(tr("PyTorch index"), self.torch_index)
        form.addRow(tr("Other packages"), self.index)
        form.addRow(tr("Offline wheels"), self.wheels)
        self.size = QLabel()
        self.size.setWordWrap(True)
        self.command = QPlainTextEdit(readOnly=True)
        self.command.setMaximumHeight(80)
        self.command.setToolTip(tr("The pip commands the installation runs (with QGIS's Python)."))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QPlainTextEdit(readOnly=True)
        self.details.setVisible(False)
        self.details_button = QPushButton(tr("Details"))
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self.details.setVisible)
        self.install_button = QPushButton(tr("Install"))
        self.install_button.clicked.connect(self.start)
        self.stop_button = QPushButton(tr("Stop"))
        self.stop_button.setToolTip(tr("Stop the installation; what is installed already stays."))
        self.stop_button.clicked.connect(self.cancel)
        self.stop_button.setEnabled(False)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        for button in (self.install_button, self.stop_button, self.details_button):
            self.buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        for widget in (self.state, QLabel(tr("Packages are installed with pip into {} (after QGIS's own packages, "
                                             "which are never replaced).").format(self.target))):
            widget.setWordWrap(True)
            layout.addWidget(widget)
        layout.addLayout(form)
        for widget in (self.size, QLabel(tr("Commands:")), self.command, self.progress, self.status, self.details,
                       self.buttons):
            layout.addWidget(widget)

        self.replan = QTimer(self)
        self.replan.setSingleShot(True)
        self.replan.setInterval(600)
        self.replan.timeout.connect(self.start_plan)
        self.set_torch_index()
        self.build.currentIndexChanged.connect(self.set_torch_index)
        for edit in (self.torch_index, self.index, self.wheels.lineEdit()):
            edit.textChanged.connect(self.options_changed)
        self.refresh()

    # ------------------------------------------------------------------------------------------------ state
    def variant(self) -> str:
        return self.build.currentData()

    def set_torch_index(self, *_args) -> None:
        variant = self.variant()
        self.torch_index.setText(QgsSettings().value(SETTINGS + f"index_{variant}", dependencies.TORCH_INDEXES[variant],
                                                     type=str))

    def wanted(self) -> list:
        """The installable requirements missing (or found broken by the last check)."""
        absent = dependencies.missing(dependencies.runtime())
        return [r for r in absent + [b for b, _ in self.broken.values() if b not in absent] if r.installable]

    def refresh(self) -> None:
        """Check what is missing (find_spec), update the list, the buttons and the plan."""
        dependencies.activate(self.target)
        absent = dependencies.missing(dependencies.runtime())
        runtime = dependencies.runtime()
        lines = []
        for installable, what in ((True, tr("will be installed")), (False, tr("part of QGIS: reinstall QGIS"))):
            names = [r.title for r in runtime if r in absent and r.installable == installable]
            if names:
                lines.append("✗ " + tr("Missing: {} ({}).").format(", ".join(names), what))
        for r, error in self.broken.values():
            lines.append("✗ " + tr("{} fails to import: {}").format(r.title, error))
        found = [r.title for r in runtime if r not in absent and r.name not in self.broken]
        if found:
            lines.append("✓ " + tr("Found: {}.").format(", ".join(found)))
        head = (tr("All dependencies are installed.") if not absent and not self.broken
                else tr("CoFusion needs Python packages that QGIS's Python lacks."))
        self.state.setText(head + "\n" + "\n".join(lines))
        idle = self.process is None or self.mode != "install"
        self.install_button.setEnabled(idle and bool(self.wanted()))
        if self.wanted():
            self.options_changed()
        else:
            self.size.setText("")
            self.command.setPlainText("")

    def options_changed(self, *_args) -> None:
        """Plan again shortly (the user is typing an index)."""
        if self.process is None or self.mode != "install":
            self.size.setText(tr("Working out the download size…"))
            self.replan.start()

    def script_arguments(self, command: str) -> list[str]:
        args = [str(SCRIPT), command, "--target", str(self.target), "--variant", self.variant(), "--watch-stdin"]
        if self.torch_index.text().strip():
            args += ["--torch-index", self.torch_index.text().strip()]
        if self.index.text().strip():
            args += ["--index", self.index.text().strip()]
        if self.wheels.filePath().strip():
            args += ["--find-links", self.wheels.filePath().strip()]
        for r in self.wanted():
            args += ["--package", r.spec]
        return args

    # ------------------------------------------------------------------------------------------------ processes
    def run_script(self, mode: str, args: list[str]) -> None:
        """Start ``dependencies.py`` with ``args`` in QGIS's Python (stopping a plan or check still running)."""
        if self.process is not None:
            self.stop_process()
        self.mode, self.buffer = mode, b""
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        environment = QProcessEnvironment.systemEnvironment()
        paths = dependencies.qgis_paths([self.target])
        environment.insert(dependencies.QGIS_PATH_VARIABLE, os.pathsep.join(paths))
        environment.insert("PYTHONIOENCODING", "utf-8")
        environment.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self.read_output)
        process.finished.connect(self.process_finished)
        process.errorOccurred.connect(self.process_error)
        self.process = process
        process.start(self.python, args)

    def stop_process(self) -> None:
        """Forget the running process: disconnect it and kill it (a plan or a check; never an installation)."""
        process, self.process = self.process, None
        if process is None:
            return
        for signal, slot in ((process.readyReadStandardOutput, self.read_output),
                             (process.finished, self.process_finished), (process.errorOccurred, self.process_error)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        if process.state() != QProcess.ProcessState.NotRunning:
            process.kill()
            process.waitForFinished(3000)
        process.deleteLater()

    def read_output(self) -> None:
        if self.process is None:
            return
        self.buffer += bytes(self.process.readAllStandardOutput())
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            self.line(raw.decode("utf-8", "replace").rstrip("\r"))

    def line(self, text: str) -> None:
        """One line of the script: an event, or pip's output (the details)."""
        if not text.startswith(dependencies.EVENT):
            if text.strip():
                self.details.appendPlainText(text)
            return
        try:
            event = json.loads(text[len(dependencies.EVENT):])
        except ValueError:
            self.details.appendPlainText(text)
            return
        kind = event.get("event")
        if kind == "plan":
            self.show_plan(event)
        elif kind in ("step", "retry"):
            self.status.setText(event["text"])
            self.details.appendPlainText("» " + event["text"])
        elif kind == "error":
            self.details.appendPlainText("» " + event["text"])
        elif kind == "check":
            self.show_check(event)
        elif kind in ("done", "failed", "canceled"):
            self.outcome = event
            if kind == "done":
                self.show_check(event)

    def show_plan(self, event: dict) -> None:
        self.plan = event["plan"]
        plan = dependencies.Plan.from_json(self.plan)
        text = [plan.describe()]
        if plan.kept:
            text.append(tr("Kept from QGIS's Python: {}.").format(", ".join(f"{n} {v}" for n, v, _ in plan.kept)))
        if plan.pruned:
            text.append(tr("Removed first from the plugin's folder (QGIS has them): {}.")
                        .format(", ".join(f"{n} {v}" for n, v in plan.pruned)))
        text += plan.notes
        self.size.setText("\n".join(text))
        if "commands" in event:
            self.command.setPlainText("\n".join(command_line(c) for c in event["commands"]))

    def show_check(self, event: dict) -> None:
        result = event.get("result", {})
        self.broken = {}
        absent = dependencies.missing(dependencies.runtime())
        for r in dependencies.runtime():
            errors = [result[m].get("error", "") for m in dependencies.CHECK_IMPORTS.get(r.module, (r.module,))
                      if m in result and not result[m].get("ok")]
            if errors and r not in absent:
                self.broken[r.name] = (r, errors[0])

    def process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.outcome = {"event": "failed", "text": tr("QGIS's Python ({}) could not be started.")
                            .format(self.python)}
            self.process_finished(-1, QProcess.ExitStatus.CrashExit)

    def process_finished(self, code: int, _status=None) -> None:
        mode = self.mode
        self.read_output()
        self.stop_process()
        self.mode = ""
        if mode == "plan":
            if self.plan is None:
                self.size.setText(tr("The download size could not be worked out (see Details); pip will say it "
                                     "as it downloads."))
            self.install_button.setEnabled(bool(self.wanted()))
            return
        if mode == "check":
            self.status.setText(tr("Every package imports.") if not self.broken else
                                tr("Some packages fail to import (marked ✗): Install puts them in again."))
            self.refresh()
            return
        self.finish_install(code)

    # ------------------------------------------------------------------------------------------------ install
    def start_plan(self) -> None:
        if self.process is not None and self.mode == "install":
            return
        self.plan = None
        if not self.wanted():
            return
        self.run_script("plan", self.script_arguments("plan"))

    def start_check(self) -> None:
        """Import every package in a new process (the truth, without loading torch into QGIS)."""
        if self.process is not None and self.mode == "install":
            return
        self.status.setText(tr("Checking that every package imports…"))
        self.run_script("check", self.script_arguments("check"))

    def start(self) -> None:
        """Install the missing packages (the button)."""
        settings = QgsSettings()
        settings.setValue(SETTINGS + "build", self.variant())
        settings.setValue(SETTINGS + f"index_{self.variant()}", self.torch_index.text().strip())
        settings.setValue(SETTINGS + "index", self.index.text().strip())
        settings.setValue(SETTINGS + "wheels", self.wheels.filePath().strip())
        self.replan.stop()
        self.outcome = None
        self.details.clear()
        self.install_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy: pip says nothing while it downloads
        self.status.setText(tr("Starting…"))
        self.run_script("install", self.script_arguments("install"))

    def cancel(self) -> None:
        """Stop the installation: the script sees its stdin close, stops pip and exits (else it is killed)."""
        process = self.process
        if process is None or self.mode != "install":
            return
        self.stop_button.setEnabled(False)
        self.status.setText(tr("Stopping…"))
        process.closeWriteChannel()
        QTimer.singleShot(STOP_GRACE_S * 1000, lambda: self.kill_if_still(process))

    def kill_if_still(self, process: QProcess) -> None:
        if self.process is process and process.state() != QProcess.ProcessState.NotRunning:
            process.kill()

    def finish_install(self, code: int) -> None:
        outcome = self.outcome or {"event": "failed", "text": tr("The installer stopped (exit code {}); the details "
                                                                 "say why.").format(code)}
        self.stop_button.setEnabled(False)
        self.progress.setRange(0, 1)
        kind = outcome.get("event")
        ok = kind == "done" and outcome.get("ok")
        self.progress.setValue(1 if ok else 0)
        dependencies.activate(self.target)
        if ok:
            still = outcome.get("missing") or []
            self.status.setText(tr("Installed: every package imports.") if not still else
                                tr("Installed; still failing: {}").format(outcome.get("text", ", ".join(still))))
        elif kind == "canceled":
            self.status.setText(tr("Stopped. What was installed stays; Install finishes the job."))
        else:
            self.status.setText(tr("Failed: {}").format(outcome.get("text", "")))
        self.refresh()
        if ok:
            self.installed.emit()

    # ------------------------------------------------------------------------------------------------ closing
    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if self.process is None:
            if self.wanted():
                self.options_changed()
            elif not self.broken and self.outcome is None:
                self.start_check()

    def reject(self) -> None:
        """Close or Esc: a running installation is stopped, a plan or check dropped; the dialog hides."""
        self.replan.stop()
        if self.process is not None:
            if self.mode == "install":
                self.cancel()
            else:
                self.stop_process()
                self.mode = ""
        super().reject()

    def shutdown(self) -> None:
        """The plugin unloads: stop whatever runs, waiting a few seconds for pip to stop."""
        self.replan.stop()
        process = self.process
        if process is not None and self.mode == "install":
            process.closeWriteChannel()
            process.waitForFinished(STOP_GRACE_S * 1000)
        self.stop_process()
        self.mode = ""
        self.hide()
