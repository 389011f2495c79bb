# SPDX-License-Identifier: GPL-2.0-or-later
"""Without the packages QGIS lacks (torch, safetensors, spectral, and pyqtgraph too) the panel still opens in a
QGIS process and names them with an install button; GeoTIFFs are still read; an ENVI header asks for spectral in
one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis
pytest.importorskip("qgis.core")

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib.abc, json, sys
BLOCKED = {"torch", "safetensors", "spectral", "pyqtgraph"}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
import numpy as np
from osgeo import gdal
from qgis.core import QgsApplication
from qgis.gui import QgsMapCanvas, QgsMessageBar
app = QgsApplication([], True)
app.initQgis()
from cofusion.cofusion_qgis import dependencies
dependencies.missing = lambda requirements=None: [r for r in (requirements or dependencies.runtime())
                                                   if r.module in BLOCKED]
from cofusion.cofusion_qgis.dock import CoFusionDock
from cofusion.core.errors import InputError
from cofusion.core.raster import read_info
dock = CoFusionDock(QgsMapCanvas(), QgsMessageBar())
asked = []
dock.install_requested.connect(lambda: asked.append(True))
dock.install_button.click()
out = {"notice": dock.notice_text.text(), "shown": not dock.notice.isHidden(), "asked": asked,
       "spectra": dock.spectra.text()}
tif = sys.argv[1] + "/a.tif"
ds = gdal.GetDriverByName("GTiff").Create(tif, 4, 4, 2, gdal.GDT_Float32); ds = None
out["tif_bands"] = read_info(tif).band_count
envi = sys.argv[1] + "/b.img"
ds = gdal.GetDriverByName("ENVI").Create(envi, 4, 4, 2, gdal.GDT_Float32); ds = None
try:
    read_info(envi)
    out["envi"] = "read"
except InputError as exc:
    out["envi"] = str(exc)
dock.unload()
out["loaded"] = sorted(m for m in BLOCKED if m in sys.modules)
print("RESULT " + json.dumps(out))
"""


def test_the_panel_opens_and_names_what_is_missing_without_torch_spectral_or_pyqtgraph(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    os.chmod(tmp_path, 0o700)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["shown"] and out["asked"] == [True]
    for name in ("PyTorch", "safetensors", "spectral (SPy)", "pyqtgraph"):
        assert name in out["notice"]
    assert "pyqtgraph" in out["spectra"]
    assert out["tif_bands"] == 2
    assert "needs the Python package 'spectral'" in out["envi"] and "\n" not in out["envi"]
    assert out["loaded"] == []
