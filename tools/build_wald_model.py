# SPDX-License-Identifier: GPL-2.0-or-later
"""Write resources/wald_benchmark.model3, the graphical-modeler model the plugin ships, from code.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/build_wald_model.py

The model is a Wald benchmark on one hyperspectral reference scene: simulate the LRHSI / HRMSI pair from it (Wald's
protocol), train a CoFusion model on the reference (reference mode, optionally on a training area only), fuse the
simulated pair with it, and assess the fusion against the reference. Building it from code (rather than editing the
XML by hand) keeps every child's parameters those of the algorithms as they are now: ``tests/qgis/test_model_file.py``
checks that the file is what this script writes and that QGIS finds it valid. The provider sets the REFERENCE
default to the bundled sample scene when it loads the model, so it runs as it opens.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "resources" / "wald_benchmark.model3"

#: Model name (its id is cofusion:wald_benchmark), the toolbox group it appears in, and its description.
NAME, GROUP, GROUP_ID = "wald_benchmark", "Quality", "quality"
DESCRIPTION = (
    "Wald benchmark on a hyperspectral reference scene: simulates the LRHSI and the HRMSI from the reference "
    "(Wald's protocol: the sensor's blur and decimation, the MSI spectral response), trains a CoFusion model on the "
    "reference (or on a training area of it), fuses the simulated pair with that model and assesses the fusion "
    "against the reference (PSNR, SSIM, SAM, ERGAS, per band, with a report and a SAM map). Training on the scene "
    "that is assessed is an in-sample score: for a held-out score, give a training area that the assessment does "
    "not judge, or train on another scene with 'Train CoFusion model'. The defaults run on the bundled sample "
    "scene in about a minute.")


def make_model():
    """The model, built with the running QGIS's classes (the plugin's algorithms must be registered)."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterExtent,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterString,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Source
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm(NAME, GROUP, GROUP_ID)
    model.setHelpContent({"ALG_DESC": DESCRIPTION, "ALG_CREATOR": "CoFusion for QGIS"})
    inputs = [
        (QgsProcessingParameterRasterLayer("REFERENCE", "Hyperspectral reference raster"),
         "The high-resolution hyperspectral scene."),
        (QgsProcessingParameterString("SRF", "MSI spectral response", defaultValue="sentinel2a:B2,B3,B4,B8"),
         "The multispectral sensor to simulate: a preset (python -m cofusion srf --list) or a CSV."),
        (QgsProcessingParameterNumber("SCALE", "Scale factor", minValue=2, maxValue=8, defaultValue=4),
         "HR pixels per LR pixel of the simulated pair."),
        (QgsProcessingParameterNumber("ITERATIONS", "Training iterations", minValue=1, defaultValue=60),
         "Optimisation steps."),
        (QgsProcessingParameterExtent("REGION", "Training area", optional=True),
         "Train on this extent of the reference only; empty: the whole scene."),
    ]
    for row, (definition, help_text) in enumerate(inputs):
        definition.setHelp(help_text)
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(120, 60 + 70 * row))
        model.addModelParameter(definition, component)

    def child(algorithm: str, child_id: str, description: str, row: int, values: dict, outputs: dict) -> None:
        """Add step ``child_id`` running ``algorithm`` with ``values`` (parameter -> source) and ``outputs``
        (model output name -> (the algorithm's output, label))."""
        step = QgsProcessingModelChildAlgorithm(algorithm)
        step.setChildId(child_id)
        step.setDescription(description)
        step.setPosition(QPointF(450, 60 + 140 * row))
        for name, source in values.items():
            step.addParameterSources(name, [source])
        step_outputs = {}
        for name, (child_output, label) in outputs.items():
            out = QgsProcessingModelOutput(name, label)
            out.setChildId(child_id)
            out.setChildOutputName(child_output)
            step_outputs[name] = out
        step.setModelOutputs(step_outputs)
        model.addChildAlgorithm(step)

    given, fixed, output_of = Source.fromModelParameter, Source.fromStaticValue, Source.fromChildOutput
    child("cofusion:simulate", "simulate", "Simulate the pair (Wald's protocol)", 0,
          {"REFERENCE": given("REFERENCE"), "SRF": given("SRF"), "SCALE": given("SCALE")}, {})
    child("cofusion:train", "train", "Train on the reference", 1,
          {"MODE": fixed("reference"), "REFERENCE": given("REFERENCE"), "SRF": given("SRF"), "SCALE": given("SCALE"),
           "ITERATIONS": given("ITERATIONS"), "REGION": given("REGION"), "PATCH_SIZE": fixed(32),
           "DEVICE": fixed("auto")},
          {"Model": ("OUTPUT_MODEL", "Trained CoFusion model")})
    child("cofusion:fuse", "fuse", "Fuse the simulated pair", 2,
          {"LRHSI": output_of("simulate", "OUTPUT_LRHSI"), "HRMSI": output_of("simulate", "OUTPUT_HRMSI"),
           "MODEL": output_of("train", "OUTPUT_MODEL"), "BATCH_SIZE": fixed(1), "DEVICE": fixed("auto")},
          {"Fused": ("OUTPUT", "Fused hyperspectral raster")})
    child("cofusion:assess", "assess", "Assess against the reference", 3,
          {"FUSED": output_of("fuse", "OUTPUT"), "REFERENCE": given("REFERENCE"), "SCALE": given("SCALE")},
          {"Metrics": ("OUTPUT_TABLE", "Quality metrics (CSV table)"),
           "Report": ("OUTPUT_REPORT", "Quality report (HTML)"),
           "SAM map": ("OUTPUT_SAM_MAP", "Spectral angle map (degrees)")})
    model.updateDestinationParameters()
    return model


def main() -> int:
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    import cofusion

    plugin = cofusion.classFactory(None)
    plugin.initProcessing()
    model = make_model()
    valid, issues = model.validate()
    if not valid:
        print("the model is not valid: " + "; ".join(issues), file=sys.stderr)
        return 1
    if not model.toFile(str(OUT)):
        print(f"cannot write {OUT}", file=sys.stderr)
        return 1
    print(f"wrote {OUT}")
    plugin.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
