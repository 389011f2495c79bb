# SPDX-License-Identifier: GPL-2.0-or-later
"""The graphical-modeler model shipped in resources/ (simulate -> train -> fuse -> assess): valid in the Modeler,
what tools/build_wald_model.py builds, labelled, in the toolbox, and it runs on the bundled sample as it opens."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "resources" / "wald_benchmark.model3"


def _builder():
    spec = importlib.util.spec_from_file_location("build_wald_model", REPO / "tools" / "build_wald_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shape(model) -> dict:
    """What a model is made of: its inputs with defaults, its steps with their algorithm and sources, its outputs."""
    steps = {}
    for child_id, child in model.childAlgorithms().items():
        sources = {name: [(s.source(), s.parameterName(), s.outputChildId(), s.outputName(), s.staticValue())
                          for s in values] for name, values in child.parameterSources().items()}
        steps[child_id] = (child.algorithmId(), sources, sorted(child.modelOutputs()))
    inputs = {d.name(): (d.type(), d.description()) for d in model.parameterDefinitions() if not d.isDestination()}
    return {"inputs": inputs, "steps": steps}


def test_the_shipped_file_is_valid_and_is_what_the_builder_makes(plugin):
    model = qgis_core.QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL))
    assert model.validate() == (True, [])
    assert _shape(model) == _shape(_builder().make_model())


def test_the_model_is_in_the_toolbox_with_labelled_outputs_and_the_sample_as_default(plugin):
    model = qgis_core.QgsApplication.processingRegistry().algorithmById("cofusion:wald_benchmark")
    assert model is not None and model.validate() == (True, [])
    labels = {d.name(): d.description() for d in model.destinationParameterDefinitions()}
    assert set(labels) == {"assess:Metrics", "assess:Report", "assess:SAM map", "fuse:Fused", "train:Model"}
    assert all(label and label != name for name, label in labels.items()), labels
    assert Path(model.parameterDefinition("REFERENCE").defaultValue()) == REPO / "resources" / "sample" / \
        "reference.tif"
    assert model.parameterDefinition("REGION") is not None


@pytest.mark.slow
def test_the_model_runs_on_the_bundled_sample_with_its_defaults(plugin, tmp_path):
    """As the run dialog fills it: every input its default (the iterations cut to keep the test short)."""
    import processing

    model = qgis_core.QgsApplication.processingRegistry().algorithmById("cofusion:wald_benchmark")
    defaults = {d.name(): d.defaultValue() for d in model.parameterDefinitions() if d.defaultValue() is not None}

    outputs = {"assess:Metrics": str(tmp_path / "metrics.csv"), "assess:Report": str(tmp_path / "report.html"),
               "assess:SAM map": str(tmp_path / "sam.tif"), "fuse:Fused": str(tmp_path / "fused.tif"),
               "train:Model": str(tmp_path / "model.safetensors")}
    result = processing.run("cofusion:wald_benchmark", {**defaults, "ITERATIONS": 2, **outputs})
    assert Path(result["fuse:Fused"]).is_file() and Path(result["train:Model"]).is_file()
    rows = dict(line.split(",")[:2] for line in (tmp_path / "metrics.csv").read_text().splitlines()[1:])
    assert {"PSNR", "SSIM", "SAM", "ERGAS"} <= set(rows) and float(rows["PSNR"]) > 10
