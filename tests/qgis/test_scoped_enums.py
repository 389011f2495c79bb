# SPDX-License-Identifier: GPL-2.0-or-later
"""Qt enums are named through their enum type (``Qt.ItemDataRole.ToolTipRole``, not ``Qt.ToolTipRole``): PyQt6, which
QGIS 4 uses, knows only the scoped names, and PyQt5 accepts both."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis
pytest.importorskip("qgis.core")

PLUGIN = Path(__file__).resolve().parents[2] / "cofusion_qgis"
CLASSES = ("Qt", "QProcess", "QDialogButtonBox", "QFrame", "QComboBox", "QSizePolicy", "QMessageBox",
           "QAbstractItemView", "QHeaderView", "QLineEdit", "QFormLayout", "QDockWidget", "QTabWidget")


def _namespace(name: str):
    from qgis.PyQt import QtCore, QtWidgets

    return getattr(QtCore, name, None) or getattr(QtWidgets, name)


def test_the_plugin_names_qt_enum_values_through_their_enum_type():
    unscoped = []
    pattern = re.compile(rf"\b({'|'.join(CLASSES)})\.([A-Z]\w*)\b(?!\.)")
    for path in sorted(PLUGIN.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for owner, member in pattern.findall(line):
                value = getattr(_namespace(owner), member, None)
                if value is not None and not isinstance(value, type):
                    unscoped.append(f"{path.relative_to(PLUGIN)}:{number}: {owner}.{member}")
    assert unscoped == []
