# SPDX-License-Identifier: GPL-2.0-or-later
"""The three faces (command line, Processing, dock) hand the same request to the one fusion service: same
defaults, the bundled model when none is named."""
from __future__ import annotations

import dataclasses

import pytest

from cofusion import cli
from cofusion.core import service
from cofusion.core.service import DEFAULT_MODEL, FusionRequest

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


class Stop(Exception):
    """Raised by the captured service so nothing runs."""


@pytest.fixture
def captured(monkeypatch) -> list[FusionRequest]:
    requests: list[FusionRequest] = []

    def capture(request, progress=None, cancel=None):
        requests.append(request)
        raise Stop

    monkeypatch.setattr(service, "fuse", capture)
    return requests


def _settings(request: FusionRequest) -> dict:
    """Everything but the paths."""
    return {k: v for k, v in dataclasses.asdict(request).items() if k not in ("lrhsi", "hrmsi", "out")}


def test_cli_processing_and_dock_make_the_same_default_request(captured, run, pair, tmp_path, qgis_app):
    from cofusion.cofusion_qgis.fuse_panel import FusePanel

    lr, hr = (str(p) for p in pair)
    with pytest.raises(Stop):
        cli.main(["fuse", "--lrhsi", lr, "--hrmsi", hr, "--out", str(tmp_path / "cli.tif"), "-q"])
    with pytest.raises(qgis_core.QgsProcessingException, match="Stop"):  # Processing wraps what the service raised
        run("fuse", {"LRHSI": lr, "HRMSI": hr, "OUTPUT": str(tmp_path / "processing.tif")})
    from qgis.gui import QgsMessageBar

    qgis_core.QgsSettings().remove("CoFusion/dock")  # the dock's own defaults, not what earlier tests saved
    bar = QgsMessageBar()
    panel = FusePanel(bar)
    for picker, path in ((panel.lrhsi, lr), (panel.hrmsi, hr)):
        layer = qgis_core.QgsRasterLayer(path, path)
        qgis_core.QgsProject.instance().addMapLayer(layer)
        picker.setLayer(layer)
    panel.output.setFilePath(str(tmp_path / "dock.tif"))
    dock_request = panel.request()
    cli_request, processing_request = captured
    expected = _settings(FusionRequest(lr, hr, "x.tif"))
    assert _settings(cli_request) == expected
    assert _settings(processing_request) == expected
    assert _settings(dock_request) == expected
    assert service.model_file(cli_request.model) == DEFAULT_MODEL
    qgis_core.QgsProject.instance().removeAllMapLayers()
