# SPDX-License-Identifier: GPL-2.0-or-later
"""core.producer: every fused raster records what made it (the model file's SHA-256, or the classical method), the
record survives a move of the model, and what is not a record reads as none."""
import hashlib

import numpy as np
import pytest

from cofusion.core import service
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.producer import (
    BY_ITEM,
    SHA256_ITEM,
    WITH_ITEM,
    Producer,
    method_producer,
    model_producer,
    read_producer,
)
from cofusion.core.raster import write_raster

from ..reliability.conftest import HR_GT, HSI, LR_GT, MSI, WAVELENGTHS, save_tiny_model


@pytest.fixture
def pair(make_raster):
    rng = np.random.default_rng(4)
    lr = make_raster(data=rng.random((HSI, 24, 24)).astype(np.float32), name="lr.tif", geotransform=LR_GT,
                     wavelengths_nm=WAVELENGTHS, fwhm_nm=[10.0] * HSI)
    hr = make_raster(data=rng.random((MSI, 48, 48)).astype(np.float32), name="hr.tif", geotransform=HR_GT)
    return lr, hr


def test_a_network_fusion_records_the_model_files_sha256_which_a_move_keeps(pair, tmp_path):
    model = save_tiny_model(tmp_path / "tiny.safetensors")
    out = service.fuse(service.FusionRequest(*pair, tmp_path / "fused.tif", model=model, device="cpu")).out_path
    recorded = read_producer(out)
    assert recorded == Producer("model", hashlib.sha256(model.read_bytes()).hexdigest()) == model_producer(model)
    moved = model.rename(tmp_path / "renamed.safetensors")  # what a fit does after fusing with its model
    assert model_producer(moved) == recorded
    other = save_tiny_model(tmp_path / "other.safetensors", seed=1)
    assert model_producer(other) != recorded
    assert recorded.describe() == f"a CoFusion model of SHA-256 {recorded.identity[:16]}..."


def test_a_classical_fusion_records_its_method(pair, tmp_path):
    out = fuse_classic_raster(*pair, tmp_path / "gsa.tif", "gsa")
    assert read_producer(out) == method_producer("gsa") != method_producer("bicubic")
    assert method_producer("gsa").metadata() == {BY_ITEM: "method", WITH_ITEM: "gsa"}
    assert read_producer(out).describe() == "the classical method gsa"


@pytest.mark.parametrize("items", [{}, {BY_ITEM: "model"}, {BY_ITEM: "method"}, {BY_ITEM: "a person", WITH_ITEM: "x"},
                                   {BY_ITEM: "method", SHA256_ITEM: "ab"}])
def test_what_is_not_a_record_reads_as_none(items, tmp_path):
    path = tmp_path / "other.tif"
    write_raster(path, np.zeros((1, 4, 4), np.float32))
    if items:
        from osgeo import gdal

        ds = gdal.Open(str(path), gdal.GA_Update)
        for key, value in items.items():
            ds.SetMetadataItem(key, value)
        ds = None
    assert read_producer(path) is None
    assert read_producer(tmp_path / "missing.tif") is None
