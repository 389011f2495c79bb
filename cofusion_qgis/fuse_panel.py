# SPDX-License-Identifier: GPL-2.0-or-later
"""The fusion part of the dock: layer and model pickers, the advanced settings, Fuse / Cancel and progress.

The panel fills a ``core.service.FusionRequest`` from its widgets and runs a ``FuseTask`` in QGIS's task manager
(with "Fit a model on this pair first" checked, the task first fits a model on the pair for the minutes given,
``core.fit.fit_and_fuse``, and keeps it next to the output as ``<output stem>.model.safetensors``);
the task's signals arrive on the main thread, where the result is added to the project with a true-colour
rendering and ``fused(layer)`` is emitted. Settings (model, the fit and its minutes, device, tile, overlap, batch
and the chosen layers by id) are kept in QgsSettings between sessions. Errors go to the message bar with the core's
message.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsProcessingException,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsUnitTypes,
)
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget, QgsMapCanvas, QgsMapLayerComboBox, QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.device import DEVICES
from ..core.fuse import DEFAULT_BATCH
from ..core.service import DEFAULT_MODEL, FusionRequest
from .environment import require_dependencies
from .fuse_task import FuseTask, fit_then_fuse
from .fusion_area import AREAS, WHOLE, area_window, fusion_grid, qgis_process_command
from .fusion_area import _quote as quote_argument  # the command's quoting, for the arguments it lacks
from .i18n import tr

#: Bands a layer needs to be taken for a hyperspectral one, and the most a multispectral one has (Sentinel-2: 13).
MIN_HYPERSPECTRAL_BANDS, MAX_MULTISPECTRAL_BANDS = 5, 20
#: The metre as QGIS names it: Qgis.DistanceUnit.Meters from QGIS 3.30, QgsUnitTypes.DistanceMeters before.
METRES = getattr(getattr(Qgis, "DistanceUnit", None), "Meters", None) or QgsUnitTypes.DistanceMeters
#: QgsSettings group of the dock.
SETTINGS = "CoFusion/dock/"
#: Tile and overlap spin boxes show 'auto' at their minimum (the core's defaults).
AUTO_TILE, AUTO_OVERLAP = 0, -16
#: The training budget of "Fit a model on this pair first" (minutes): its default (``core.fit.DEFAULT_FIT_MINUTES``,
#: which needs PyTorch to import; a test checks they are equal) and its range.
FIT_MINUTES, MIN_FIT_MINUTES, MAX_FIT_MINUTES = 5.0, 0.01, 1440.0


def fitted_model_path(out: str | Path) -> Path:
    """Where the panel keeps the model it fits for the output ``out``: ``<output stem>.model.safetensors`` beside
    it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.model.safetensors")


def raster_layers() -> list[QgsRasterLayer]:
    """The raster layers of the project, in layer-tree order."""
    return [layer for layer in QgsProject.instance().layerTreeRoot().layerOrder()
            if isinstance(layer, QgsRasterLayer)]


def pixel_size_m(layer: QgsRasterLayer) -> float:
    """The layer's pixel width in metres (degrees converted at the equator: enough to rank layers)."""
    factor = QgsUnitTypes.fromUnitToUnitFactor(layer.crs().mapUnits(), METRES)
    return layer.rasterUnitsPerPixelX() * factor


def suggest(layers: list[QgsRasterLayer]) -> tuple[QgsRasterLayer | None, QgsRasterLayer | None,
                                                   QgsRasterLayer | None]:
    """A guess at (LRHSI, HRMSI, reference) among ``layers`` from their roles, not their order: the LRHSI is the
    hyperspectral layer (at least ``MIN_HYPERSPECTRAL_BANDS`` bands) with the coarsest pixels, most bands first
    among equals; the HRMSI the layer with fewer bands (3 to ``MAX_MULTISPECTRAL_BANDS``) and the finest pixels;
    the reference a layer with the LRHSI's band count at the HRMSI's pixels (within 1 %)."""
    hyper = [la for la in layers if la.bandCount() >= MIN_HYPERSPECTRAL_BANDS]
    lrhsi = max(hyper, key=lambda la: (round(pixel_size_m(la), 6), la.bandCount()), default=None)
    multi = min((la for la in layers if 3 <= la.bandCount() <= MAX_MULTISPECTRAL_BANDS and la is not lrhsi
                 and (lrhsi is None or la.bandCount() < lrhsi.bandCount())), key=pixel_size_m, default=None)
    reference = None
    if lrhsi is not None and multi is not None:
        reference = next((la for la in hyper if la is not lrhsi and la.bandCount() == lrhsi.bandCount()
                          and abs(pixel_size_m(la) - pixel_size_m(multi)) <= 0.01 * pixel_size_m(multi)), None)
    return lrhsi, multi, reference


class FusePanel(QWidget):
    """Inputs, model, advanced settings and the Fuse button; emits ``fused(layer)`` with the added result."""

    fused = pyqtSignal(QgsRasterLayer)

    def __init__(self, message_bar: QgsMessageBar, canvas: QgsMapCanvas | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_bar = message_bar
        self.canvas = canvas
        self.task: FuseTask | None = None
        self.lrhsi = self._layer_picker(tr("Low-resolution hyperspectral raster (e.g. EnMAP, PRISMA), with band "
                                           "wavelengths."))
        self.hrmsi = self._layer_picker(tr("High-resolution multispectral raster (e.g. Sentinel-2) on a grid that "
                                           "subdivides the LRHSI's grid."))
        self.reference = self._layer_picker(tr("Optional high-resolution hyperspectral reference: its spectra are "
                                               "plotted and compared with the fused ones (SAM, RMSE)."))
        self.model = QgsFileWidget()
        self.model.setFilter(tr("CoFusion model (*.safetensors)"))
        self.model.lineEdit().setPlaceholderText(tr("bundled model"))
        self.model.setToolTip(tr("A CoFusion checkpoint trained for these band counts and scale; empty: the model "
                                 "bundled with the plugin ({}).").format(DEFAULT_MODEL.name))
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.SaveFile)
        self.output.setFilter(tr("GeoTIFF (*.tif *.tiff)"))
        self.output.lineEdit().setPlaceholderText(tr("temporary file"))
        self.output.setToolTip(tr("The fused GeoTIFF; empty: a temporary file."))

        inputs = QFormLayout()
        inputs.addRow(tr("LRHSI"), self.lrhsi)
        inputs.addRow(tr("HRMSI"), self.hrmsi)
        inputs.addRow(tr("Reference"), self.reference)
        inputs.addRow(tr("Model"), self.model)
        self.fit = QCheckBox(tr("Fit a model on this pair first"))
        self.fit.setToolTip(tr("Train a model on this pair itself (pair mode: both rasters degraded by the scale), "
                               "then fuse with it: for sensors, bands or a scale that no model at hand fits. With a "
                               "model chosen above, that model is fine-tuned (it must fit the pair's bands and "
                               "scale); without, one is trained from scratch. The model is kept next to the output "
                               "as <output name>.model.safetensors."))
        self.fit_minutes = QDoubleSpinBox()
        self.fit_minutes.setRange(MIN_FIT_MINUTES, MAX_FIT_MINUTES)
        self.fit_minutes.setDecimals(2)
        self.fit_minutes.setSingleStep(1.0)
        self.fit_minutes.setValue(FIT_MINUTES)
        self.fit_minutes.setSuffix(tr(" min"))
        self.fit_minutes.setToolTip(tr("Minutes of training; reading the pair before it and the fusion after it come "
                                       "on top."))
        fit_row = QHBoxLayout()
        fit_row.addWidget(self.fit, 1)
        fit_row.addWidget(self.fit_minutes)
        inputs.addRow("", fit_row)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setMinimumWidth(1)  # wraps to the panel's width instead of widening it
        inputs.addRow("", self.model_info)
        inputs.addRow(tr("Output"), self.output)
        self.area = QComboBox()
        for key, label in AREAS:
            self.area.addItem(label, key)
        self.area.setToolTip(tr("What to fuse: the whole scene, the map's current extent, or the extent of the "
                                "features selected in the vector layers; the pixels equal those of a whole run."))
        inputs.addRow(tr("Area"), self.area)

        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip(tr("Where the model runs: auto (a CUDA GPU when present, else the CPU), cpu or cuda."))
        self.tile = self._spin(AUTO_TILE, 4096, 16, tr("Edge of the square tiles the model runs on, in output "
                                                       "pixels; a multiple of 16. auto: 288."))
        self.overlap = self._spin(AUTO_OVERLAP, 1024, 16, tr("Output pixels shared by neighbouring tiles, blended "
                                                             "smoothly; at most half the tile. auto: 32."))
        self.batch = self._spin(1, 256, 1, tr("Tiles per model call: more is faster on a GPU and needs more "
                                              "memory."))
        self.advanced = QgsCollapsibleGroupBox(tr("Advanced"))
        self.advanced.setCollapsed(True)
        self.advanced.setSaveCollapsedState(False)
        form = QFormLayout(self.advanced)
        form.addRow(tr("Device"), self.device)
        form.addRow(tr("Tile size (px)"), self.tile)
        form.addRow(tr("Tile overlap (px)"), self.overlap)
        form.addRow(tr("Batch size (tiles)"), self.batch)

        self.fuse_button = QPushButton(QgsApplication.getThemeIcon("/mActionStart.svg"), tr("Fuse"))
        self.fuse_button.setToolTip(tr("Fuse the LRHSI and the HRMSI in the background; the result is added to "
                                       "the map."))
        self.fuse_button.clicked.connect(self.start)
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setToolTip(tr("Stop the fusion after the batch in progress; no file is left."))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.command_button = QPushButton(QgsApplication.getThemeIcon("/mActionEditCopy.svg"), "")
        self.command_button.setToolTip(tr("Copy this fusion as a qgis_process command line (for a script or a "
                                          "server)."))
        self.command_button.clicked.connect(self.copy_command)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fuse_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.command_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(inputs)
        layout.addWidget(self.advanced)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.restore()
        QgsProject.instance().layersAdded.connect(self.fill_empty_pickers)
        self.model.fileChanged.connect(self.show_model_info)
        self.fit.toggled.connect(self.show_model_info)
        self.fit_minutes.valueChanged.connect(self.show_model_info)
        self.output.fileChanged.connect(self.show_model_info)
        self.lrhsi.layerChanged.connect(self.show_model_info)
        self.hrmsi.layerChanged.connect(self.show_model_info)
        self.show_model_info()

    @staticmethod
    def _layer_picker(tooltip: str) -> QgsMapLayerComboBox:
        picker = QgsMapLayerComboBox()
        picker.setFilters(QgsMapLayerProxyModel.RasterLayer)
        picker.setAllowEmptyLayer(True)
        picker.setLayer(None)
        picker.setToolTip(tooltip)
        picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)  # narrow docks
        picker.setMinimumContentsLength(8)
        return picker

    @staticmethod
    def _spin(minimum: int, maximum: int, step: int, tooltip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(minimum, maximum)
        spin.setSingleStep(step)
        if minimum <= 0:
            spin.setSpecialValueText(tr("auto"))
        spin.setToolTip(tooltip)
        return spin

    # ------------------------------------------------------------------------------------------------ settings
    def restore(self) -> None:
        """Widgets from QgsSettings (layers by id when the project has them, else a guess)."""
        settings = QgsSettings()
        self.model.setFilePath(settings.value(SETTINGS + "model", "", type=str))
        self.device.setCurrentText(settings.value(SETTINGS + "device", DEVICES[0], type=str))
        self.tile.setValue(settings.value(SETTINGS + "tile", AUTO_TILE, type=int))
        self.overlap.setValue(settings.value(SETTINGS + "overlap", AUTO_OVERLAP, type=int))
        self.batch.setValue(settings.value(SETTINGS + "batch", DEFAULT_BATCH, type=int))
        self.fit.setChecked(settings.value(SETTINGS + "fit", False, type=bool))
        self.fit_minutes.setValue(settings.value(SETTINGS + "fit_minutes", FIT_MINUTES, type=float))
        project = QgsProject.instance()
        for key, picker in self._pickers().items():
            picker.setLayer(project.mapLayer(settings.value(SETTINGS + key, "", type=str)))
        self.fill_empty_pickers()

    def save(self) -> None:
        """The widgets' values to QgsSettings."""
        settings = QgsSettings()
        settings.setValue(SETTINGS + "model", self.model.filePath())
        settings.setValue(SETTINGS + "device", self.device.currentText())
        for key, spin in (("tile", self.tile), ("overlap", self.overlap), ("batch", self.batch),
                          ("fit_minutes", self.fit_minutes)):
            settings.setValue(SETTINGS + key, spin.value())
        settings.setValue(SETTINGS + "fit", self.fit.isChecked())
        for key, picker in self._pickers().items():
            settings.setValue(SETTINGS + key, picker.currentLayer().id() if picker.currentLayer() else "")

    def _pickers(self) -> dict[str, QgsMapLayerComboBox]:
        return {"lrhsi": self.lrhsi, "hrmsi": self.hrmsi, "reference": self.reference}

    def fill_empty_pickers(self, *_added) -> None:
        """Put the guessed LRHSI / HRMSI / reference (``suggest``) into the pickers that are still empty."""
        lrhsi, hrmsi, reference = suggest(raster_layers())
        for picker, layer in ((self.lrhsi, lrhsi), (self.hrmsi, hrmsi), (self.reference, reference)):
            if picker.currentLayer() is None and layer is not None:
                picker.setLayer(layer)

    # ------------------------------------------------------------------------------------------------ the run
    def request(self) -> FusionRequest:
        """The fusion request of the widgets; QgsProcessingException with a message a user can act on."""
        lrhsi, hrmsi = self.lrhsi.currentLayer(), self.hrmsi.currentLayer()
        if lrhsi is None or hrmsi is None:
            raise QgsProcessingException(tr("Choose an LRHSI and an HRMSI layer."))
        for layer in (lrhsi, hrmsi):
            if layer.providerType() != "gdal":
                raise QgsProcessingException(tr("Layer '{}' is not a file raster; save it as a GeoTIFF first.")
                                             .format(layer.name()))
        out = self.output.filePath() or QgsProcessingUtils.generateTempFilename("cofusion_fused.tif")
        tile, overlap = self.tile.value(), self.overlap.value()
        area = self.area.currentData()
        region = None if area == WHOLE else area_window(area, fusion_grid(lrhsi.source(), hrmsi.source()),
                                                        self.canvas)
        model = None if self.fit.isChecked() else self.model.filePath() or None  # a fit uses the model it fits
        return FusionRequest(lrhsi.source(), hrmsi.source(), out, model=model,
                             device=self.device.currentText(), tile=tile if tile > AUTO_TILE else None,
                             overlap=overlap if overlap > AUTO_OVERLAP else None, batch=self.batch.value(),
                             region=region)

    def show_model_info(self, *_changed) -> str:
        """Say what the chosen model is and whether it fits the chosen pair (and why not, with what to do), or that a
        model will be fitted on the pair; returns the text shown."""
        from ..core.errors import CoFusionError

        fitting, chosen = self.fit.isChecked(), self.model.filePath() or None
        self.model.lineEdit().setPlaceholderText(tr("none: train from scratch") if fitting else tr("bundled model"))
        text = ""
        if fitting:
            where = (tr("next to the output as {}").format(fitted_model_path(self.output.filePath()).name)
                     if self.output.filePath() else tr("next to the (temporary) output as <name>.model.safetensors"))
            start = tr("from scratch") if chosen is None else tr("fine-tuning {}").format(Path(chosen).name)
            text = tr("A model will be fitted on this pair ({} min of training, {}), then the pair is fused with it; "
                      "the model is kept {}.").format(f"{self.fit_minutes.value():g}", start, where)
            if chosen is None:
                self.model_info.setText(text)
                return text
        try:
            from ..core.service import check_model_fits, describe_model

            described = describe_model(chosen)
            text = described if not fitting else text + " " + described
        except ImportError:  # the runtime dependencies are missing: the dock's notice says so
            pass
        except CoFusionError as exc:
            text = (text + " " if text else "") + str(exc)
        else:
            lrhsi, hrmsi = self.lrhsi.currentLayer(), self.hrmsi.currentLayer()
            if lrhsi is not None and hrmsi is not None:
                try:
                    check_model_fits(chosen, lrhsi.source(), hrmsi.source())
                    text += " " + tr("It fits this pair.")
                except CoFusionError as exc:
                    text += " " + (tr("It cannot be fine-tuned on this pair: {} Empty the model to train one from "
                                      "scratch.") if fitting else
                                   tr("It does not fit this pair: {} Check 'Fit a model on this pair first', or "
                                      "train one on this pair: Processing Toolbox > CoFusion > Train CoFusion "
                                      "model, mode pair.")).format(exc)
        self.model_info.setText(text)
        return text

    def copy_command(self) -> str:
        """Put the qgis_process command of the current settings on the clipboard (and return it)."""
        try:
            request = self.request()
            grid = None if request.region is None else fusion_grid(str(request.lrhsi), str(request.hrmsi))
        except QgsProcessingException as exc:
            self.report_error(exc.args[0] if exc.args else str(exc))
            return ""
        if self.fit.isChecked():
            command = self.fit_command(request, grid)
        else:
            command = qgis_process_command(request, grid, self.output.filePath())
        QApplication.clipboard().setText(command)
        self.message_bar.pushMessage("CoFusion", tr("The qgis_process command is on the clipboard."),
                                     Qgis.Info, 5)
        return command

    def fit_command(self, request: FusionRequest, grid) -> str:
        """The ``qgis_process`` command of ``cofusion:fit_and_fuse`` with the request's inputs, area, device and the
        panel's budget (the tiling is the algorithm's default)."""
        command = qgis_process_command(replace(request, model=None, tile=None, overlap=None, batch=None), grid,
                                       self.output.filePath())
        model = str(fitted_model_path(self.output.filePath())) if self.output.filePath() else "TEMPORARY_OUTPUT"
        extra = [f"MINUTES={self.fit_minutes.value():g}", f"OUTPUT_MODEL={model}"]
        if self.model.filePath():
            extra.append(f"START_FROM={self.model.filePath()}")
        return (command.replace("cofusion:fuse -- ", "cofusion:fit_and_fuse -- ", 1) + " "
                + " ".join(quote_argument(argument) for argument in extra))

    def start(self) -> None:
        """Check the inputs and start the fusion task (the button stays disabled while it runs); with "Fit a model
        on this pair first" checked, the task fits one first and keeps it next to the output."""
        try:
            require_dependencies()
            request = self.request()
        except QgsProcessingException as exc:
            self.report_error(exc.args[0] if exc.args else str(exc))
            return
        self.save()
        if self.fit.isChecked():
            work = fit_then_fuse(fitted_model_path(request.out), self.fit_minutes.value(),
                                 self.model.filePath() or None)
            self.task = FuseTask(request, work, tr("CoFusion: fitting a model and fusing"))
        else:
            self.task = FuseTask(request)
        # bound methods of main-thread objects: the worker thread's signals are queued to the main thread
        self.task.progressChanged.connect(self.show_progress)
        self.task.progress_text.connect(self.show_status)
        self.task.fused.connect(self.add_result)
        self.task.failed.connect(self.report_error)
        self.task.canceled.connect(self.canceled)
        self.fuse_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(tr("Fitting a model on the pair…") if self.fit.isChecked() else tr("Loading the model…"))
        QgsApplication.taskManager().addTask(self.task)

    def show_progress(self, percent: float) -> None:
        if self._from_the_running_task():
            self.progress.setValue(int(percent))

    def show_status(self, text: str) -> None:
        if self._from_the_running_task():
            self.status.setText(text)

    def _from_the_running_task(self) -> bool:
        """Whether the signal being handled comes from the task in progress: the worker's signals are queued, so
        some arrive after the task finished, and must not overwrite the outcome shown (or show in a later run)."""
        return self.task is not None and self.sender() is self.task

    def canceled(self) -> None:
        self.progress.setValue(0)  # not left where the work stopped: nothing of it is kept
        self.finish(tr("Canceled: no file was written."))

    def cancel(self) -> None:
        """Ask the running task to stop (it stops after the batch in progress)."""
        if self.task is not None:
            self.cancel_button.setEnabled(False)
            self.status.setText(tr("Canceling…"))
            self.task.cancel()

    def finish(self, text: str) -> None:
        """Back to idle, with ``text`` as the status."""
        self.task = None
        self.fuse_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(text)

    def report_error(self, message: str) -> None:
        """Show ``message`` (the core's) in the message bar and the status line."""
        self.message_bar.pushMessage("CoFusion", message, Qgis.Critical, 0)
        self.finish(tr("Failed: see the message bar."))

    def add_result(self, path: str) -> None:
        """Add the fused raster to the project, in true colour, and announce it."""
        from ..core.raster import read_info
        from .rendering import apply_true_color

        layer = QgsRasterLayer(path, Path(path).stem)
        apply_true_color(layer, read_info(path).wavelengths_nm)
        QgsProject.instance().addMapLayer(layer)
        self.progress.setValue(100)
        model = getattr(getattr(self.task, "result", None), "model", None)  # a fit's FitResult names its model
        self.finish(tr("Fused: {}").format(path) if model is None else
                    tr("Fused with a model fitted on this pair: {}; the model: {}").format(path, model))
        self.fused.emit(layer)

    def unload(self) -> None:
        """Cancel a running task and disconnect from the project."""
        if self.task is not None:
            self.task.cancel()
        QgsProject.instance().layersAdded.disconnect(self.fill_empty_pickers)
