# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared fixtures: paths to the real data in ../shared/data and small synthetic rasters."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real scenes (../shared/data); tests that need it skip where it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
