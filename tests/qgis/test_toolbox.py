# SPDX-License-Identifier: GPL-2.0-or-later
"""The Processing toolbox as users meet it: found by the words they type, a help page and an icon per algorithm,
choices by name or by number, the shipped model among the algorithms."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
qgis_gui = pytest.importorskip("qgis.gui")


def _found(text: str) -> set[str]:
    """The CoFusion algorithm ids the toolbox's search shows for ``text``."""
    model = qgis_gui.QgsProcessingToolboxProxyModel(None, qgis_core.QgsApplication.processingRegistry())
    model.setFilterString(text)
    found: set[str] = set()

    def walk(parent) -> None:
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            algorithm = model.toolboxModel().algorithmForIndex(model.mapToSource(index))
            if algorithm is not None and algorithm.provider().id() == "cofusion":
                found.add(algorithm.id())
            walk(index)

    walk(model.index(-1, -1))
    return found


@pytest.mark.parametrize("words, expected", [
    ("pansharpening", {"cofusion:fuse", "cofusion:fuse_classic"}),
    ("sharpening", {"cofusion:fuse", "cofusion:fuse_classic"}),
    ("super-resolution", {"cofusion:fuse", "cofusion:train"}),
    ("hyperspectral", {"cofusion:fuse", "cofusion:assess", "cofusion:train"}),
    ("EnMAP", {"cofusion:fuse", "cofusion:fuse_classic"}),
    ("PRISMA", {"cofusion:fuse"}),
    ("Sentinel-2", {"cofusion:fuse"}),
    ("spectral angle", {"cofusion:assess"}),
    ("QNR", {"cofusion:assess_qnr"}),
    ("Gram-Schmidt", {"cofusion:fuse_classic"}),
    ("Wald", {"cofusion:simulate"}),
])
def test_the_toolbox_search_finds_the_algorithms_by_the_words_users_type(plugin, words, expected):
    assert expected <= _found(words)


def test_every_algorithm_has_a_help_page_and_an_icon_of_its_group(plugin):
    provider = qgis_core.QgsApplication.processingRegistry().providerById("cofusion")
    for algorithm in provider.algorithms():
        if isinstance(algorithm, qgis_core.QgsProcessingModelAlgorithm):
            continue
        page = Path(url2pathname(urlparse(algorithm.helpUrl()).path))
        text = page.read_text(encoding="utf-8")
        assert algorithm.displayName() in text and f"cofusion:{algorithm.name()}" in text
        assert all(p.name() in text for p in algorithm.parameterDefinitions())
        assert Path(algorithm.svgIconPath()).is_file() and not algorithm.icon().isNull()
    assert len({a.svgIconPath() for a in provider.algorithms()}) >= 4  # one per group


def test_a_choice_takes_its_name_or_its_number(run, pair, tmp_path):
    """qgis_process help offers 'Number of selected option, e.g. 1'; both forms give the same method."""
    from cofusion.core.raster import read_raster

    by_name = run("fuse_classic", {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "METHOD": "gsa",
                                   "OUTPUT": str(tmp_path / "name.tif")})["OUTPUT"]
    from cofusion.cofusion_qgis.algorithms.params import CLASSIC_METHODS

    number = CLASSIC_METHODS.index("gsa")
    for value in (number, str(number)):
        out = tmp_path / f"number{value!r}.tif".replace("'", "")
        run("fuse_classic", {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "METHOD": value, "OUTPUT": str(out)})
        assert read_raster(out).tobytes() == read_raster(by_name).tobytes()
    with pytest.raises(qgis_core.QgsProcessingException):
        run("fuse_classic", {"LRHSI": str(pair[0]), "HRMSI": str(pair[1]), "METHOD": len(CLASSIC_METHODS),
                             "OUTPUT": str(tmp_path / "none.tif")})
