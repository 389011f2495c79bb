# SPDX-License-Identifier: GPL-2.0-or-later
"""A coarser imaging spectrometer simulated from a finer hyperspectral reference: AVIRIS Jasper Ridge as EnMAP."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cofusion.core.errors import InputError
from cofusion.core.raster import read_info, read_raster
from cofusion.core.srf import parse_srf, sensor_wavelengths

pytest.importorskip("torch")
from cofusion.core.simulate_raster import simulate_raster  # noqa: E402 (needs torch)


def test_an_enmap_like_pair_from_aviris_jasper_ridge(shared_data, tmp_path):
    reference = shared_data / "aviris_jasper_ridge.tif"
    ref_info = read_info(reference)
    # AVIRIS' water-vapour bands are left out of the scene: the two EnMAP bands inside those gaps are refused,
    # and the message lists the bands the scene covers in a form the SRF accepts.
    with pytest.raises(InputError, match=r"'B135' .* and 1 more \(B164\).*\(here (\S+);") as refused:
        simulate_raster(reference, "enmap", 3, tmp_path / "no_lr.tif", tmp_path / "no_hr.tif")
    assert not list(tmp_path.iterdir())
    covered = re.search(r"\(here (\S+);", str(refused.value)).group(1)
    assert covered == "B1-B134,B136-B163,B165-B224"

    # 1. EnMAP's bands on the reference grid: each an EnMAP Gaussian integrated against AVIRIS' bands.
    _, enmap_path = simulate_raster(reference, f"enmap:{covered}", 3, tmp_path / "aviris_lr.tif",
                                    tmp_path / "enmap_hr.tif")
    enmap = read_info(enmap_path)
    centres, _ = sensor_wavelengths("enmap")
    kept = np.delete(centres, [134, 163])
    assert enmap.band_count == 222 and enmap.band_names[:2] == ("B1", "B2")
    np.testing.assert_allclose(enmap.wavelengths_nm, kept, atol=0.01)
    R = parse_srf(f"enmap:{covered}").matrix(ref_info.wavelengths_nm, ref_info.fwhm_nm)
    Z = read_raster(reference)[:, :99, :99]
    np.testing.assert_allclose(read_raster(enmap_path), np.einsum("mc,chw->mhw", R, Z), rtol=1e-4, atol=1e-2)

    # 2. That cube as the LR side of an EnMAP + Sentinel-2 pair at scale 3 (30 m and 10 m).
    lr_path, hr_path = simulate_raster(enmap_path, "sentinel2a", 3, tmp_path / "enmap_lr.tif",
                                       tmp_path / "s2_hr.tif")
    lr, hr = read_info(lr_path), read_info(hr_path)
    assert (lr.band_count, lr.width, lr.height) == (222, 33, 33)
    assert lr.wavelengths_nm == enmap.wavelengths_nm
    assert (hr.band_names, hr.width) == (("B2", "B3", "B4", "B8"), 99)
