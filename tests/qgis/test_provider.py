# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin registers the provider, lists every algorithm, and unload leaves QGIS as it found it."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")

ALGORITHMS = {"fuse", "fit_and_fuse", "fuse_classic", "align_to_grid", "assign_wavelengths", "train", "simulate",
              "assess", "assess_qnr", "assess_pair", "batch_fuse"}
MODELS = {"wald_benchmark"}  # graphical models shipped in resources/ (tests/qgis/test_model_file.py)


def test_provider_lists_the_algorithms_with_help_and_reference(plugin):
    provider = qgis_core.QgsApplication.processingRegistry().providerById("cofusion")
    assert provider is not None and provider.name() == "CoFusion" and not provider.icon().isNull()
    models = {a.name() for a in provider.algorithms() if isinstance(a, qgis_core.QgsProcessingModelAlgorithm)}
    algorithms = {a.name(): a for a in provider.algorithms() if a.name() not in models}
    assert set(algorithms) == ALGORITHMS and models == MODELS
    for name, algorithm in algorithms.items():
        assert algorithm.id() == f"cofusion:{name}"
        text = algorithm.shortHelpString()
        assert "CoFusion" in text and "Reference" in text
        for parameter in algorithm.parameterDefinitions():
            assert parameter.name().isupper() and parameter.help(), (name, parameter.name())
            assert parameter.name() in text
        assert algorithm.tags() and algorithm.group()


def test_a_missing_package_is_named_with_a_command_that_leaves_qgis_packages_alone(plugin, monkeypatch):
    from cofusion.cofusion_qgis import dependencies
    from cofusion.cofusion_qgis.environment import require_dependencies

    monkeypatch.setattr(dependencies, "missing", lambda _requirements: [dependencies.Requirement("torch", "torch")])
    with pytest.raises(qgis_core.QgsProcessingException) as raised:
        require_dependencies()
    message = str(raised.value)
    assert "lacks: torch" in message and "dependencies.py install --target" in message
    assert "pip install" not in message and "\n" not in message


#: The labels of the parameters several algorithms take (``algorithms.params``' factories): models and
#: qgis_process scripts name them, so they stay the same everywhere and from release to release.
SHARED_LABELS = {"LRHSI": "Low-resolution hyperspectral raster", "HRMSI": "High-resolution multispectral raster",
                 "FUSED": "Fused raster", "DEVICE": "Device", "THREADS": "CPU threads",
                 "TILE_SIZE": "Tile size (HR pixels)", "OVERLAP": "Tile overlap (HR pixels)"}


def test_the_parameters_several_algorithms_take_are_declared_alike(plugin):
    provider = qgis_core.QgsApplication.processingRegistry().providerById("cofusion")
    seen = {name: [] for name in SHARED_LABELS}
    for algorithm in provider.algorithms():
        for parameter in algorithm.parameterDefinitions():
            if parameter.name() in seen and algorithm.name() in ALGORITHMS:
                seen[parameter.name()].append((algorithm.name(), parameter))
    for name, label in SHARED_LABELS.items():
        assert len(seen[name]) >= 2, name
        for algorithm, parameter in seen[name]:
            assert parameter.description() == label, (algorithm, name)
            assert parameter.type() == seen[name][0][1].type(), (algorithm, name)
    for algorithm, device in seen["DEVICE"]:
        assert device.options() == ["auto", "cpu", "cuda"] and device.defaultValue() == "auto", algorithm
        assert device.flags() & qgis_core.QgsProcessingParameterDefinition.FlagAdvanced, algorithm
        assert device.help().startswith("Where ") and device.help().endswith(", cpu or cuda."), algorithm
