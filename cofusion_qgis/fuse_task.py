# SPDX-License-Identifier: GPL-2.0-or-later
"""The fusion as a QGIS background task: ``FuseTask`` runs the fusion service (``core.service.fuse``) in a QgsTask.

``run()`` works in a worker thread on the request's file paths only (never a live layer): it loads the model,
fuses, and
turns the core's progress into ``setProgress`` and ``isCanceled()`` into its cancel check. ``finished()`` runs
on the main thread and emits ``fused(path)`` or ``failed(message)`` (the core's message as is; a cancel
emits ``canceled``), so all GUI work happens in the slots connected to these signals. ``status(text)`` carries
the core's progress text (queued to the receiver's thread). The core's warnings of the run (bad bands left out, a
model band filled in) are kept and written to QGIS's message log ("CoFusion" tab) when it finishes.
"""
from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.service import FusionRequest
from .core_log import forward_log
from .i18n import tr


class FuseTask(QgsTask):
    """Fuses as ``request`` says (``core.service.FusionRequest``), in the background."""

    fused = pyqtSignal(str)
    failed = pyqtSignal(str)
    canceled = pyqtSignal()
    status = pyqtSignal(str)  # the core's progress text ('tile 3 of 12'), emitted from the worker thread

    def __init__(self, request: FusionRequest) -> None:
        super().__init__(tr("CoFusion: fusing"), QgsTask.CanCancel)
        self.request = request
        self.error: str | None = None
        self.was_canceled = False
        self.out_path: str | None = None
        self.warnings: list[str] = []

    def run(self) -> bool:
        """Worker thread: load the model and fuse; store the outcome for ``finished``. Never raises."""
        from ..core import service
        from ..core.errors import Canceled, CoFusionError

        try:
            with forward_log(lambda _info: None, self.warnings.append):
                result = service.fuse(self.request, progress=self._report, cancel=self.isCanceled)
        except Canceled:
            self.was_canceled = True
            return False
        except CoFusionError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 (an unexpected failure must reach the user, not kill QGIS)
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.out_path = str(result.out_path)
        return True

    def _report(self, fraction: float, message: str) -> None:
        """The core's progress callable (worker thread): percent to ``setProgress``, text to ``status``."""
        self.setProgress(100.0 * fraction)
        self.status.emit(message)

    def finished(self, result: bool) -> None:  # noqa: FBT001 (QGIS API)
        """Main thread: log the core's warnings, announce the outcome."""
        for warning in self.warnings:
            QgsMessageLog.logMessage(warning, "CoFusion", Qgis.Warning)
        if result:
            self.fused.emit(self.out_path)
        elif self.was_canceled or self.isCanceled():
            self.canceled.emit()
        else:
            self.failed.emit(self.error or tr("The fusion failed."))
