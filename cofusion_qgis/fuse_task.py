# SPDX-License-Identifier: GPL-2.0-or-later
"""The fusion as a QGIS background task: ``FuseTask`` runs the fusion service (``core.service.fuse``) in a QgsTask,
or another of the core's fusions of a request: :func:`fit_then_fuse` makes the one that first fits a model on the
pair (``core.fit.fit_and_fuse``).

``run()`` works in a worker thread on the request's file paths only (never a live layer): it loads the model (or
fits one), fuses, and turns the core's progress into ``setProgress`` and ``isCanceled()`` into its cancel check.
``finished()`` runs on the main thread and emits ``fused(path)`` or ``failed(message)`` (the core's message as is; a
cancel emits ``canceled``), so all GUI work happens in the slots connected to these signals.
``progress_text(text)`` carries the core's progress text (queued to the receiver's thread). The core's warnings of
the run (bad bands left out, a model band filled in) are kept and written to QGIS's message log ("CoFusion" tab)
when it finishes.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.service import FusionRequest
from .core_log import forward_log
from .i18n import tr

#: A fusion of a request: ``work(request, progress=..., cancel=...)`` returning a result with ``out_path``
#: (``core.service.fuse``'s FusionResult, ``core.fit.fit_and_fuse``'s FitResult).
Work = Callable[..., object]


def fit_then_fuse(model_out: str | Path, minutes: float, start_from: str | Path | None = None) -> Work:
    """The work that fits a model on the request's pair for ``minutes`` of training (fine-tuning ``start_from``
    when given, else from scratch), keeps it at ``model_out`` and fuses with it (``core.fit.fit_and_fuse``, on the
    request's device and threads)."""
    def work(request, progress=None, cancel=None):
        from ..core import fit

        return fit.fit_and_fuse(request, model_out, minutes=minutes, device=request.device,
                                threads=request.threads, progress=progress, cancel=cancel, start_from=start_from)

    return work


class FuseTask(QgsTask):
    """Fuses as ``request`` says (``core.service.FusionRequest``), in the background: with ``work`` (default
    ``core.service.fuse``), e.g. :func:`fit_then_fuse`; ``result`` is what it returned."""

    fused = pyqtSignal(str)
    failed = pyqtSignal(str)
    canceled = pyqtSignal()
    # the core's progress text ('tile 3 of 12'), emitted from the worker thread (not ``status``: QgsTask.status())
    progress_text = pyqtSignal(str)

    def __init__(self, request: FusionRequest, work: Work | None = None, title: str | None = None) -> None:
        super().__init__(title or tr("CoFusion: fusing"), QgsTask.CanCancel)
        self.request = request
        self.work = work
        self.result = None
        self.error: str | None = None
        self.was_canceled = False
        self.out_path: str | None = None
        self.warnings: list[str] = []

    def run(self) -> bool:
        """Worker thread: run the work (load the model and fuse, or fit one and fuse); store the outcome for
        ``finished``. Never raises."""
        from ..core import service
        from ..core.errors import Canceled, CoFusionError

        try:
            with forward_log(lambda _info: None, self.warnings.append):
                work = self.work or service.fuse  # looked up now: the service, as the other faces call it
                result = work(self.request, progress=self._report, cancel=self.isCanceled)
        except Canceled:
            self.was_canceled = True
            return False
        except CoFusionError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 (an unexpected failure must reach the user, not kill QGIS)
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        self.result = result
        self.out_path = str(result.out_path)
        return True

    def cancel(self) -> None:
        """Main thread (the dock's Cancel or the task manager's): ask the work to stop, and say so in the task's
        description. QGIS has one status, Terminated, for a failed and a canceled task (its list shows
        "Terminated", its desktop notice "Task failed"), so the description is where QGIS shows it was canceled."""
        if not self.isCanceled():
            self.setDescription(tr("{}: canceled, no file written").format(self.description()))
        super().cancel()

    def _report(self, fraction: float, message: str) -> None:
        """The core's progress callable (worker thread): percent to ``setProgress``, text to ``progress_text``."""
        self.setProgress(100.0 * fraction)
        self.progress_text.emit(message)

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
