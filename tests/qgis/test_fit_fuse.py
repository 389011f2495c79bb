# SPDX-License-Identifier: GPL-2.0-or-later
"""cofusion:fit_and_fuse end to end (processing.run, qgis_process, a modeler chain), its check of the budget before
Run, and the dock's "Fit a model on this pair first"."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cofusion.core.checkpoint import read_card
from cofusion.core.raster import read_info, read_raster

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


def _params(pair, folder: Path, **changes) -> dict:
    return {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "MINUTES": 0, "ITERATIONS": 1, "DEVICE": "cpu",
            "OUTPUT": str(folder / "fused.tif"), "OUTPUT_MODEL": str(folder / "fitted.safetensors"), **changes}


def test_fit_and_fuse_runs_end_to_end_and_keeps_the_model(run, make_pair, tmp_path):
    pair = make_pair(32)  # 32 x 32 LR pixels: the smallest pair the default network trains on at x2 is 32 x 16
    result = run("fit_and_fuse", _params(pair, tmp_path))
    assert result["OUTPUT"] == str(tmp_path / "fused.tif") and result["OUTPUT_MODEL"] == str(
        tmp_path / "fitted.safetensors")
    assert Path(result["OUTPUT_LOG"]).read_text().startswith("step,")
    assert result["PSNR"] >= result["BASE_PSNR"] > 0
    assert read_info(result["OUTPUT"]).band_count == 5 and read_card(result["OUTPUT_MODEL"]).config.scale == 2
    assert read_card(result["OUTPUT_MODEL"]).provenance["fitted_by"].startswith("fit_and_fuse")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".tif" or p.name == "fused.tif") == [
        "fitted.log.csv", "fitted.safetensors", "fused.tif"]


def test_a_fitted_model_is_fine_tuned_on_another_pair_and_the_threads_are_taken(run, make_pair, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    pair = make_pair(32)
    model = run("fit_and_fuse", _params(pair, first))["OUTPUT_MODEL"]
    result = run("fit_and_fuse", _params(pair, second, START_FROM=model, THREADS=1))
    started = read_card(result["OUTPUT_MODEL"]).provenance["started_from"]
    assert started["model"] == model and read_card(result["OUTPUT_MODEL"]).config == read_card(model).config
    assert read_info(result["OUTPUT"]).band_count == 5


def test_a_model_of_other_bands_is_refused_for_fine_tuning_in_one_line(run, make_pair, tmp_path):
    from cofusion.core.service import DEFAULT_MODEL

    with pytest.raises(qgis_core.QgsProcessingException, match="cannot be fine-tuned") as raised:
        run("fit_and_fuse", _params(make_pair(32), tmp_path, START_FROM=str(DEFAULT_MODEL)))
    assert "\n" not in str(raised.value) and not list(tmp_path.glob("fused*")) and not list(tmp_path.glob("fitted*"))


def test_the_dialog_refuses_a_zero_budget_before_run(plugin, pair, tmp_path):
    algorithm = qgis_core.QgsApplication.processingRegistry().createAlgorithmById("cofusion:fit_and_fuse")
    context = qgis_core.QgsProcessingContext()
    ok, message = algorithm.checkParameterValues(_params(pair, tmp_path, MINUTES=0, ITERATIONS=None), context)
    assert not ok and "training budget above 0" in message
    ok, message = algorithm.checkParameterValues(_params(pair, tmp_path, MINUTES=-1, ITERATIONS=None), context)
    assert not ok and message.startswith("minutes -1.0 (--minutes, MINUTES) must be a finite number in (0,")
    assert algorithm.checkParameterValues(_params(pair, tmp_path, MINUTES=5, ITERATIONS=None), context)[0]
    assert algorithm.parameterDefinition("MINUTES").defaultValue() == 5
    outputs = {o.name() for o in algorithm.outputDefinitions()}
    assert {"OUTPUT", "OUTPUT_MODEL", "OUTPUT_LOG", "PSNR", "BASE_PSNR"} <= outputs  # for the modeler


def test_the_defaults_are_the_cores():
    from cofusion.cofusion_qgis.algorithms.fit_fuse import DEFAULT_MINUTES
    from cofusion.cofusion_qgis.fuse_panel import FIT_MINUTES
    from cofusion.core.fit import DEFAULT_FIT_MINUTES

    assert DEFAULT_MINUTES == FIT_MINUTES == DEFAULT_FIT_MINUTES


def test_a_modeler_chain_fuses_other_scenes_with_the_fitted_model(plugin, make_pair, tmp_path):
    import processing
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Source

    model = QgsProcessingModelAlgorithm("fit_chain", "test", "test")
    for name in ("LRHSI", "HRMSI"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    steps = {"fit": ("cofusion:fit_and_fuse", {"MINUTES": Source.fromStaticValue(0),
                                               "ITERATIONS": Source.fromStaticValue(1)}, ("OUTPUT", "OUTPUT_MODEL")),
             "fuse": ("cofusion:fuse", {"MODEL": Source.fromChildOutput("fit", "OUTPUT_MODEL"),
                                       "BATCH_SIZE": Source.fromStaticValue(1)}, ("OUTPUT",))}
    for child_id, (algorithm, values, outputs) in steps.items():
        step = QgsProcessingModelChildAlgorithm(algorithm)
        step.setChildId(child_id)
        for name, source in {"LRHSI": Source.fromModelParameter("LRHSI"), "HRMSI": Source.fromModelParameter("HRMSI"),
                             "DEVICE": Source.fromStaticValue("cpu"), **values}.items():
            step.addParameterSources(name, [source])
        kept = {}
        for name in outputs:
            output = QgsProcessingModelOutput(f"{child_id}_{name}", f"{child_id} {name}")
            output.setChildId(child_id)
            output.setChildOutputName(name)
            kept[output.name()] = output
        step.setModelOutputs(kept)
        model.addChildAlgorithm(step)
    model.updateDestinationParameters()
    valid, issues = model.validate()
    assert valid, issues
    pair = make_pair(32)
    names = [d.name() for d in model.destinationParameterDefinitions()]
    files = {name: str(tmp_path / (name + (".safetensors" if name.lower().endswith("model") else ".tif")))
             for name in names}
    result = processing.run(model, {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), **files},
                            feedback=qgis_core.QgsProcessingFeedback())
    by_name = {key.split(":")[-1].lower(): value for key, value in result.items()}  # QGIS 3.40 names them in lower case
    fitted, again = by_name["fit_output"], by_name["fuse_output"]
    assert Path(by_name["fit_output_model"]).is_file()
    np.testing.assert_array_equal(read_raster(fitted), read_raster(again))  # the model kept is the one it fused with


def test_qgis_process_runs_fit_and_fuse(qgis_process, make_pair, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = [f"{k}={v}" for k, v in _params(make_pair(32), out).items()]
    done = qgis_process("run", "cofusion:fit_and_fuse", "--json", "--", *args, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert results["PSNR"] >= results["BASE_PSNR"] and Path(results["OUTPUT_MODEL"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["fitted.log.csv", "fitted.safetensors", "fused.tif"]


def test_the_dock_fits_a_model_on_the_pair_first(qgis_app, make_pair, tmp_path):
    from qgis.gui import QgsMessageBar
    from qgis.PyQt import sip

    from cofusion.cofusion_qgis.fuse_panel import FusePanel
    from cofusion.cofusion_qgis.fuse_task import FuseTask

    from .test_dock import wait_for

    project = qgis_core.QgsProject.instance()
    qgis_core.QgsSettings().remove("CoFusion/dock")
    lr, hr = make_pair(32)
    layers = [qgis_core.QgsRasterLayer(str(path), path.stem) for path in (lr, hr)]
    project.addMapLayers(layers)
    bar = QgsMessageBar()
    panel = FusePanel(bar)
    try:
        panel.lrhsi.setLayer(layers[0])
        panel.hrmsi.setLayer(layers[1])
        panel.device.setCurrentText("cpu")
        panel.output.setFilePath(str(tmp_path / "result.tif"))
        assert not panel.fit.isChecked() and panel.fit_minutes.value() == 5 and panel.model.isEnabled()
        panel.fit.setChecked(True)
        panel.fit_minutes.setValue(0.01)
        text = panel.model_info.text()
        assert text.startswith("A model will be fitted on this pair (0.01 min of training, from scratch)") and \
            "result.model.safetensors" in text and panel.model.isEnabled()  # a model chosen there is fine-tuned
        assert panel.model.lineEdit().placeholderText() == "none: train from scratch"
        from cofusion.core.service import DEFAULT_MODEL

        panel.model.setFilePath(str(DEFAULT_MODEL))  # 198 bands at x4: not this pair's
        text = panel.show_model_info()
        assert "fine-tuning default.safetensors" in text and "It cannot be fine-tuned on this pair" in text
        panel.model.setFilePath("")
        command = panel.copy_command()
        assert command.startswith("qgis_process run cofusion:fit_and_fuse -- ") and "MINUTES=0.01" in command
        assert f"OUTPUT_MODEL={tmp_path / 'result.model.safetensors'}" in command and "MODEL=" not in \
            command.replace("OUTPUT_MODEL=", "")
        panel.start()
        assert isinstance(panel.task, FuseTask) and panel.task.work is not None
        wait_for(lambda: panel.task is None, seconds=300)
        assert panel.progress.value() == 100, bar.currentItem().text() if bar.currentItem() else panel.status.text()
        model = tmp_path / "result.model.safetensors"
        assert model.is_file() and (tmp_path / "result.model.log.csv").is_file()
        assert panel.status.text() == f"Fused with a model fitted on this pair: {tmp_path / 'result.tif'}; the " \
                                      f"model: {model}"
        assert read_card(model).provenance["fit"]["fused"] == str(tmp_path / "result.tif")
        assert any(layer.source() == str(tmp_path / "result.tif") for layer in project.mapLayers().values())
        panel.save()
        again = FusePanel(QgsMessageBar())
        assert again.fit.isChecked() and again.fit_minutes.value() == 0.01
        again.unload()
        sip.delete(again)
    finally:
        panel.unload()
        project.removeAllMapLayers()
        qgis_core.QgsSettings().remove("CoFusion/dock")
        sip.delete(panel)
