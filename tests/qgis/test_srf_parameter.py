# SPDX-License-Identifier: GPL-2.0-or-later
"""The MSI spectral response parameter of simulate and train: any specification string from scripts and models,
a spectrometer preset as SRF, and the dialog's editable list of presets with 'CSV file…' last."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from cofusion.core.raster import read_info
from cofusion.core.srf import preset_names

from .conftest import HR_GT, WAVELENGTHS, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


def _srf_parameter(plugin, algorithm: str):
    alg = qgis_core.QgsApplication.processingRegistry().algorithmById(f"cofusion:{algorithm}")
    return alg.parameterDefinition("SRF")


@pytest.mark.parametrize("algorithm", ["simulate", "train"])
def test_srf_stays_a_string_parameter_with_the_preset_widget(plugin, algorithm):
    parameter = _srf_parameter(plugin, algorithm)
    assert parameter.type() == "string"
    for spec in ("sentinel2a:B2,B3,B4,B8", "landsat8:B2,B3", "enmap:B1-B130", "/data/my_sensor.csv"):
        assert parameter.checkValueIsAcceptable(spec)
    module, _, name = parameter.metadata()["widget_wrapper"]["class"].rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == "SrfWidgetWrapper"


def test_simulate_takes_a_band_range_of_a_spectrometer(run, make_raster, tmp_path):
    reference = make_raster(data=smooth_reference(16, 16), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            fwhm_nm=[100.0] * len(WAVELENGTHS), geotransform=HR_GT)
    result = run("simulate", {"REFERENCE": str(reference), "SRF": "enmap:B10-B60", "SCALE": 2,
                              "OUTPUT_LRHSI": str(tmp_path / "lr.tif"), "OUTPUT_HRMSI": str(tmp_path / "hr.tif")})
    hr = read_info(result["OUTPUT_HRMSI"])
    assert hr.band_names == tuple(f"B{i}" for i in range(10, 61))


def test_simulate_refuses_a_band_the_reference_does_not_cover(run, make_raster, tmp_path):
    reference = make_raster(data=smooth_reference(16, 16), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            geotransform=HR_GT)
    with pytest.raises(qgis_core.QgsProcessingException, match=r"'B11'.*100 % of its response.*here B2;"):
        run("simulate", {"REFERENCE": str(reference), "SRF": "sentinel2a:B2,B11", "SCALE": 2,
                         "OUTPUT_LRHSI": str(tmp_path / "lr.tif"), "OUTPUT_HRMSI": str(tmp_path / "hr.tif")})


class AlgorithmDialog:
    """Stands in for Processing's dialog: the wrapper tells the dialog type by the class name."""


class ModelerParametersDialog:
    """Stands in for the model designer's dialog, offering one model input."""

    def __init__(self) -> None:
        self.source = qgis_core.QgsProcessingModelChildParameterSource.fromModelParameter("SRF")

    def getAvailableValuesOfType(self, *_types):  # noqa: N802 (Processing API name)
        return [self.source]

    def resolveValueDescription(self, _value) -> str:  # noqa: N802 (Processing API name)
        return "the model's SRF"


@pytest.fixture
def wrapper_for(plugin):
    from cofusion.cofusion_qgis.algorithms.srf_widget import SrfWidgetWrapper

    def make(algorithm: str, dialog=None):
        return SrfWidgetWrapper(_srf_parameter(plugin, algorithm), dialog or AlgorithmDialog())

    return make


def test_the_dialog_lists_the_presets_then_csv_and_keeps_any_text(wrapper_for):
    from qgis.PyQt.QtCore import Qt

    from cofusion.cofusion_qgis.algorithms.srf_widget import CSV_ENTRY

    wrapper = wrapper_for("simulate")
    combo = wrapper.widget
    assert combo.isEditable()
    assert [combo.itemText(i) for i in range(combo.count())] == [*preset_names(), CSV_ENTRY]
    assert "default B2,B3,B4,B8" in combo.itemData(0, Qt.ToolTipRole)
    assert wrapper.value() == "sentinel2a:B2,B3,B4,B8"          # the default
    wrapper.setValue("landsat8:B2,B3")
    assert wrapper.value() == "landsat8:B2,B3"
    wrapper.setValue("enmap")
    assert combo.currentText() == "enmap" and wrapper.value() == "enmap"


def test_csv_file_opens_a_file_dialog_and_cancel_keeps_the_text(wrapper_for, monkeypatch, tmp_path):
    from cofusion.cofusion_qgis.algorithms import srf_widget

    wrapper = wrapper_for("simulate")
    csv = str(tmp_path / "camera.csv")
    answers = [(csv, ""), ("", "")]
    monkeypatch.setattr(srf_widget.QFileDialog, "getOpenFileName", lambda *args: answers.pop(0))
    last = wrapper.widget.count() - 1
    for expected in (csv, csv):
        wrapper.widget.setCurrentIndex(last)
        wrapper.widget.activated.emit(last)
        assert wrapper.value() == expected


def test_train_srf_starts_empty(wrapper_for):
    assert wrapper_for("train").value() is None


def test_the_model_designer_offers_the_model_inputs_first(wrapper_for):
    dialog = ModelerParametersDialog()
    wrapper = wrapper_for("simulate", dialog)
    assert wrapper.widget.itemText(0) == "the model's SRF"
    wrapper.setValue(dialog.source)
    assert wrapper.value() == dialog.source
    wrapper.setValue("sentinel2a:B1,B2,B3")
    assert wrapper.value() == "sentinel2a:B1,B2,B3"


def test_the_shipped_model_still_passes_its_string_to_simulate(plugin):
    model = qgis_core.QgsProcessingModelAlgorithm()
    assert model.fromFile(str(Path(__file__).resolve().parents[2] / "resources" / "wald_benchmark.model3"))
    assert model.parameterDefinition("SRF").defaultValue() == "sentinel2a:B2,B3,B4,B8"
    for child in model.childAlgorithms().values():
        if child.algorithmId() in ("cofusion:simulate", "cofusion:train"):
            [source] = child.parameterSources()["SRF"]
            assert source.parameterName() == "SRF"
            assert child.algorithm().parameterDefinition("SRF").checkValueIsAcceptable("sentinel2a:B2,B3,B4,B8")
