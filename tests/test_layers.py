# SPDX-License-Identifier: GPL-2.0-or-later
"""The layer rule: core and training import without QGIS or PyQt; only classFactory touches QGIS."""
import subprocess
import sys

BLOCK_QGIS = (
    "import sys\n"
    "for name in ('qgis', 'PyQt5', 'qgis.core', 'qgis.PyQt'):\n"
    "    sys.modules[name] = None  # any import of these now raises ImportError\n"
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_QGIS + code], capture_output=True, text=True)


def test_core_and_training_import_without_qgis():
    modules = ["cofusion", "cofusion.core", "cofusion.training"]
    code = "import importlib, pkgutil, cofusion.core as c, cofusion.training as t\n"
    code += "for pkg in (c, t):\n"
    code += "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
    code += "        if not m.name.endswith('__main__'):\n"
    code += "            importlib.import_module(m.name)\n"
    code += f"print({modules!r})"
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_class_factory_is_the_only_qgis_entry():
    result = _run("import cofusion\nprint(callable(cofusion.classFactory))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
