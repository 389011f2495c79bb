# SPDX-License-Identifier: GPL-2.0-or-later
"""core.band_support: which LRHSI bands the HRMSI's response covers (measured detail) and which it does not."""
from __future__ import annotations

import numpy as np
import pytest

from cofusion.core.band_support import (
    DETAIL_ITEM,
    REASON_ITEM,
    RULE_ITEM,
    band_support,
    fusion_support,
    hrmsi_response,
)
from cofusion.core.errors import InputError
from cofusion.core.raster import RasterInfo
from cofusion.core.srf import gaussian_bands, parse_srf

#: A 400-2500 nm imaging spectrometer, 10 nm steps.
HSI = tuple(400.0 + 10.0 * k for k in range(211))


def info(bands: int, wavelengths=None, fwhm=None, name: str = "hrmsi.tif") -> RasterInfo:
    return RasterInfo(name, 8, 8, bands, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), "", "float32", (None,) * bands,
                      wavelengths, fwhm, tuple(f"band {k + 1}" for k in range(bands)))


def test_an_rgb_camera_supports_the_visible_and_leaves_the_nir_and_swir_extrapolated():
    rgb = parse_srf("rgb")
    split = band_support(HSI, response=rgb, source="rgb")
    supported = np.array(split.supported)
    wl = np.asarray(HSI)
    # the generic RGB's half-maximum widths run from 415 to 650 nm (describe_presets says so)
    assert supported[(wl >= 420) & (wl <= 650)].all()
    assert not supported[wl < 415].any() and not supported[wl > 650].any()
    assert "415-650 nm" in split.rule and "rgb" in split.how
    items = split.band_metadata()
    assert len(items) == len(HSI)
    assert items[HSI.index(550.0)][DETAIL_ITEM] == "measured" and "Green" in items[HSI.index(550.0)][REASON_ITEM]
    assert items[HSI.index(1600.0)][DETAIL_ITEM] == "extrapolated"
    assert items[HSI.index(1600.0)][REASON_ITEM].startswith("1600.0 nm: no HRMSI band responds")
    assert "415-650 nm" in split.dataset_metadata()[RULE_ITEM] and "rgb" in split.dataset_metadata()[RULE_ITEM]


def test_a_response_matrix_splits_like_the_curves_it_was_sampled_from():
    msi = gaussian_bands((460.0, 550.0, 650.0, 850.0), (60.0, 60.0, 60.0, 100.0), ("B", "G", "R", "N"))
    curves = np.array(band_support(HSI, response=msi).supported)
    matrix = msi.matrix(HSI)
    by_weight = band_support(HSI, matrix=matrix, matrix_wavelengths_nm=HSI, msi_band_names=msi.band_names,
                             source="a card")
    weights = np.array(by_weight.supported)
    assert curves.sum() == 32 and not weights[np.asarray(HSI) > 900].any()
    assert (weights != curves).sum() <= 8  # one sample (10 nm) at each of the 4 bands' 2 edges at most
    assert "central 76%" in by_weight.rule and "N's weight" in by_weight.reasons[HSI.index(850.0)]


def test_without_a_response_or_wavelengths_nothing_is_marked_and_the_dataset_says_why():
    for split, why in ((band_support(HSI, tried="no SRF given"), "unknown (no SRF given)"),
                       (band_support(None, response=parse_srf("rgb")), "carries no wavelengths")):
        assert split.supported is None and split.band_metadata() is None and why in split.how
        assert split.dataset_metadata()[RULE_ITEM].startswith("No band is marked measured or extrapolated")


def test_the_hrmsi_response_comes_from_the_srf_given_else_its_band_metadata():
    with_metadata = info(3, (450.0, 550.0, 650.0), (100.0, 100.0, 100.0))
    response, source = hrmsi_response("sentinel2a:B2,B3,B4", with_metadata)
    assert response.band_names == ("B2", "B3", "B4") and "the SRF given" in source
    response, source = hrmsi_response(None, with_metadata)
    assert len(response.band_names) == 3 and "band metadata" in source
    assert hrmsi_response("", info(3, (450.0, 550.0, 650.0))) == (None, "band centres but no FWHM")
    assert hrmsi_response(None, info(3)) == (None, "no band wavelengths and FWHM")
    with pytest.raises(InputError, match="The SRF has 4 bands but the HRMSI hrmsi.tif has 3"):
        hrmsi_response("sentinel2a", info(3))


def test_a_fusion_takes_the_srf_then_the_hrmsi_metadata_then_the_model_card():
    lr = info(len(HSI), HSI, name="lrhsi.tif")
    card = parse_srf("sentinel2a:B2,B3,B4,B8").matrix(HSI)
    card_split = fusion_support(lr, info(4), matrix=card, matrix_wavelengths_nm=HSI, matrix_source="the card's")
    assert card_split.supported[HSI.index(830.0)] and "the card's" in card_split.how  # B8, the NIR band
    metadata_split = fusion_support(lr, info(4, (450.0, 550.0, 650.0, 750.0), (50.0,) * 4), matrix=card,
                                    matrix_wavelengths_nm=HSI, matrix_source="the card's")
    assert "band metadata" in metadata_split.how and not metadata_split.supported[HSI.index(830.0)]
    nir_metadata = info(3, (750.0, 850.0, 950.0), (50.0,) * 3)
    assert fusion_support(lr, nir_metadata).supported[HSI.index(750.0)]
    srf_split = fusion_support(lr, nir_metadata, srf="rgb")
    assert "the SRF given" in srf_split.how and not srf_split.supported[HSI.index(750.0)]
    unknown = fusion_support(lr, info(4))
    assert unknown.supported is None and "model card" not in unknown.how
    assert "no response in the model card" in fusion_support(lr, info(4), matrix_source="the card's").how
