# SPDX-License-Identifier: GPL-2.0-or-later
"""Sensor spectral responses: presets, CSV tables, the response matrix R and the errors users see."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from cofusion.core.errors import InputError
from cofusion.core.srf import (
    SRF_DIR,
    SpectralResponse,
    describe_presets,
    gaussian_bands,
    load_csv,
    parse_srf,
    preset_names,
    sensor_wavelengths,
)

FULL_NM = np.arange(400.0, 2501.0, 10.0)
CAVE_NM = np.arange(400.0, 591.0, 10.0)
# Every preset lies inside this grid, fine enough for the narrowest bands (DESIS, FWHM 2.4 nm).
WIDE_NM = np.arange(300.0, 2601.0, 2.0)
SPECTROMETERS = {"enmap": 224, "prisma": 234, "desis": 235, "emit": 285}


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_and_its_rows_sum_to_one(name):
    srf = parse_srf(name)
    R = srf.matrix(WIDE_NM)
    assert R.dtype == np.float64
    assert R.shape == (len(srf.band_names), WIDE_NM.size)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(R >= 0)
    R_fwhm = srf.matrix(WIDE_NM, hsi_fwhm_nm=4.0)
    np.testing.assert_allclose(R_fwhm.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(srf.missing_shares(WIDE_NM) < 0.01)


def test_the_catalogue_names_every_preset_in_one_line():
    lines = describe_presets()
    assert list(lines) == preset_names()
    assert all("\n" not in line and " nm" in line for line in lines.values())
    assert lines["sentinel2a"] == ("Sentinel-2A MSI, ESA measured responses; 13 bands B1,B2,B3,B4,B5,B6,B7,B8,"
                                   "B8A,B9,B10,B11,B12; half-maximum edges 433-2286 nm; default B2,B3,B4,B8")
    assert lines["enmap"].endswith("224 bands B1-B224; centres 418-2446 nm, FWHM 5.8-11.4 nm")
    for name in ("sentinel2b", "sentinel2c", "landsat5", "landsat7", "landsat9", "pleiades1a", "pleiades1b",
                 "spot6", "spot7", "venus", "rapideye", *SPECTROMETERS):
        assert name in lines


@pytest.mark.parametrize("name, bands, centres", [
    # Published centre wavelengths: ESA (S2B, S2C), USGS (TM, ETM+), Airbus (Pleiades, SPOT), CNES (VENuS).
    ("sentinel2b", ("B2", "B3", "B4", "B8"), [492.1, 559.0, 664.9, 832.9]),
    ("sentinel2c:B2,B8A,B12", ("B2", "B8A", "B12"), [489, 865, 2191]),
    ("landsat5", ("B1", "B2", "B3", "B4", "B5", "B7"), [486, 571, 660, 839, 1678, 2217]),
    ("landsat7", ("B1", "B2", "B3", "B4", "B5", "B7"), [479, 561, 661, 835, 1650, 2208]),
    ("pleiades1a", ("Blue", "Green", "Red", "NIR"), [491, 553, 646, 835]),
    ("pleiades1b:Pan", ("Pan",), [661]),
    ("spot7", ("Blue", "Green", "Red", "NIR"), [485, 560, 655, 805]),
    ("venus:B1,B12", ("B1", "B12"), [424, 909]),
    ("rapideye", ("B1", "B2", "B3", "B4", "B5"), [478, 556, 660, 713, 808]),
])
def test_measured_presets_have_their_bands_and_centres(name, bands, centres):
    srf = parse_srf(name)
    assert srf.band_names == bands
    np.testing.assert_allclose(srf.centre_wavelengths_nm(), centres, atol=3)


@pytest.mark.parametrize("name, count", SPECTROMETERS.items())
def test_spectrometer_presets_are_gaussians_of_their_band_table(name, count):
    centres, fwhm = sensor_wavelengths(name.upper())
    assert centres.shape == fwhm.shape == (count,) and np.all(fwhm > 0)
    srf = parse_srf(name)
    assert srf.band_names == tuple(f"B{i}" for i in range(1, count + 1))
    np.testing.assert_allclose(srf.centre_wavelengths_nm(), centres, atol=0.01)
    one = parse_srf(f"{name}:B10")
    at = lambda w: np.interp(w, one.wavelengths_nm, one.responses[0])  # noqa: E731
    assert at(centres[9] + fwhm[9] / 2) == pytest.approx(0.5, abs=5e-3)   # linear between samples
    centres[0] = 0.0   # a copy: the table is not changed
    assert sensor_wavelengths(name)[0][0] > 300


def test_sensor_wavelengths_refuses_a_multispectral_preset():
    with pytest.raises(InputError, match="'sentinel2a' is not an imaging spectrometer preset.*enmap, prisma"):
        sensor_wavelengths("sentinel2a")


def test_sentinel2_centres_and_default_bands():
    s2 = parse_srf("sentinel2a")
    assert s2.band_names == ("B2", "B3", "B4", "B8")
    np.testing.assert_allclose(s2.centre_wavelengths_nm(), [492, 560, 665, 833], atol=3)
    full = parse_srf("sentinel2a:all")
    assert full.band_names == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
    # Published Sentinel-2A central wavelengths (ESA): B1 442.7, B8A 864.7, B11 1613.7, B12 2202.4 nm.
    np.testing.assert_allclose(full.select(["B1", "B8A", "B11", "B12"]).centre_wavelengths_nm(),
                               [442.7, 864.7, 1613.7, 2202.4], atol=3)


def test_landsat_8_and_9_names_and_centres():
    l8, l9 = parse_srf("landsat8"), parse_srf("Landsat9")
    assert l8.band_names == l9.band_names == ("B2", "B3", "B4", "B5", "B6", "B7")
    # USGS OLI centre wavelengths: 482, 561, 655, 865, 1609, 2201 nm; OLI-2 was built to the same specification.
    for srf in (l8, l9):
        np.testing.assert_allclose(srf.centre_wavelengths_nm(), [482, 561, 655, 865, 1609, 2201], atol=3)
    full = parse_srf("landsat9:all")
    assert full.band_names == tuple(f"B{i}" for i in range(1, 10))
    # Coastal 443, panchromatic 590, cirrus 1373 nm: the cirrus and SWIR bands carry no copy of the NIR band.
    np.testing.assert_allclose(full.select("B1,B8,B9").centre_wavelengths_nm(), [443, 592, 1373], atol=3)
    assert full.missing_shares(np.arange(1300.0, 2400.0, 5.0))[5:7].max() == 0.0


@pytest.mark.parametrize("name, centres", [("worldview3", [480, 545, 660, 832.5]), ("ikonos", [480.5, 550.5, 665, 805]),
                                           ("rgb", [460, 540, 610])])
def test_gaussian_presets_have_their_documented_centres(name, centres):
    np.testing.assert_allclose(parse_srf(name).centre_wavelengths_nm(), centres, atol=0.1)


def test_band_selection_is_ordered_case_insensitive_and_trims_the_grid():
    s2 = parse_srf("sentinel2a:b8a, B2")
    assert s2.band_names == ("B8A", "B2")
    assert s2.wavelengths_nm[0] < 440 and s2.wavelengths_nm[-1] < 890   # B2 starts at 439, B8A ends at 881
    assert s2.responses[:, [0, -1]].max() == 0


def test_gaussian_bands_peak_at_centre_and_halve_at_fwhm():
    srf = gaussian_bands([500.0, 600.0], [20.0, 40.0], names=["a", "b"])
    for row, centre, fwhm in zip(srf.responses, (500, 600), (20, 40)):
        at = lambda w, row=row: np.interp(w, srf.wavelengths_nm, row)  # noqa: E731
        assert at(centre) == pytest.approx(1.0, abs=1e-6)
        assert at(centre - fwhm / 2) == pytest.approx(0.5, abs=1e-3)
        assert at(centre + fwhm / 2) == pytest.approx(0.5, abs=1e-3)
    assert gaussian_bands([500.0], 10.0).band_names == ("B1",)


def test_matrix_samples_at_the_hsi_centres_and_normalises_by_hand(tmp_path):
    csv = _write(tmp_path / "tri.csv", "band,wavelength_nm,response\nT,500,0\nT,510,1\nT,520,0\n")
    R = load_csv(csv).matrix([505.0, 510.0, 515.0, 530.0])
    np.testing.assert_allclose(R, [[0.25, 0.5, 0.25, 0.0]])


def test_matrix_with_fwhm_integrates_and_reaches_bands_between_centres():
    narrow = gaussian_bands([505.0], 1.0)          # sampled over 505 +- 3 nm only
    hsi = np.array([490.0, 500.0, 510.0, 520.0])
    with pytest.raises(InputError, match="falls between the HSI band centres"):
        narrow.matrix(hsi)
    R = narrow.matrix(hsi, hsi_fwhm_nm=10.0)
    np.testing.assert_allclose(R[0, 1], R[0, 2])          # symmetric about 505 nm
    assert R[0, 1] > 0.45 and R[0, 0] > 0
    # A width of 0 is the plain sampling.
    wide = gaussian_bands([505.0], 30.0)
    np.testing.assert_allclose(wide.matrix(hsi, np.zeros(4)), wide.matrix(hsi), atol=1e-12)


def test_band_outside_the_hsi_range_names_band_and_range():
    with pytest.raises(InputError, match=r"'B8'.*400\.0-590\.0 nm"):
        parse_srf("sentinel2a:B2,B8").matrix(CAVE_NM)


def test_a_band_is_not_interpolated_across_a_stretch_listed_only_by_other_bands():
    # B3 ends at 583 nm, B4 starts at 646 nm: B4 must be 0 at 590 nm, not a ramp across the gap.
    s2 = parse_srf("sentinel2a:all")
    b4 = s2.responses[s2.band_names.index("B4")]
    assert np.interp(590.0, s2.wavelengths_nm, b4) == 0.0
    with pytest.raises(InputError, match="'B4'"):
        parse_srf("sentinel2a:B3,B4").matrix(CAVE_NM)


def test_benchmark_cave_matrix_uses_b1_b2_b3():
    R = parse_srf("sentinel2a:B1,B2,B3").matrix(CAVE_NM)
    peak = CAVE_NM[R.argmax(axis=1)]
    assert np.all(np.diff(peak) > 0) and 430 <= peak[0] <= 450 and 550 <= peak[2] <= 570


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(InputError, match="sentinel2a.*landsat8.*worldview3.*ikonos.*rgb"):
        parse_srf("sentinel3")


def test_unknown_band_lists_the_sensor_bands():
    with pytest.raises(InputError, match=r"\['B1'.*'B12'\]"):
        parse_srf("sentinel2a:B2,B13")
    with pytest.raises(InputError, match="listed twice"):
        parse_srf("sentinel2a:B2,b2")


def test_long_and_wide_csv_agree_and_micrometres_are_converted(tmp_path):
    long = _write(tmp_path / "long.csv",
                  "band,wavelength_nm,response\nblue,450,0.2\nblue,460,1\nblue,470,0.3\n"
                  "red,600,0.5\nred,610,1\nred,620,0.5\n")
    # A wide table defines every band on every row: the long table's implicit zero one step beyond each
    # band's range is written out.
    wide = _write(tmp_path / "wide.csv", "wavelength_nm,blue,red\n440,0,0\n450,0.2,0\n460,1,0\n470,0.3,0\n"
                                         "480,0,0\n590,0,0\n600,0,0.5\n610,0,1\n620,0,0.5\n630,0,0\n")
    micro = _write(tmp_path / "um.csv", "wavelength_um,blue,red\n0.44,0,0\n0.45,0.2,0\n0.46,1,0\n0.47,0.3,0\n"
                                        "0.48,0,0\n0.59,0,0\n0.60,0,0.5\n0.61,0,1\n0.62,0,0.5\n0.63,0,0\n")
    hsi = np.arange(445.0, 626.0, 5.0)
    a, b, c = (load_csv(p) for p in (long, wide, micro))
    assert a.band_names == b.band_names == c.band_names == ("blue", "red")
    np.testing.assert_allclose(a.matrix(hsi), b.matrix(hsi), atol=1e-12)
    np.testing.assert_allclose(a.matrix(hsi), c.matrix(hsi), atol=1e-9)
    assert parse_srf(str(long)).band_names == ("blue", "red")
    assert parse_srf(f"{long}:red").band_names == ("red",)


@pytest.mark.parametrize("text, match", [
    ("band,wavelength_nm,response\nB,500,x\nB,510,1\n", "Cannot parse"),
    ("band,wavelength_nm,response\nB,500,1\n", "fewer than 2 data rows"),
    ("band,wavelength_nm,response\nB,500,1\nB,500,0.5\nB,510,1\n", "wavelength twice"),
    ("wavelength_nm,B\n500,1,3\n510,1\n520,0\n", "Cannot parse"),
])
def test_unparsable_csv_raises_input_error(tmp_path, text, match):
    with pytest.raises(InputError, match=match):
        load_csv(_write(tmp_path / "bad.csv", text))


def test_missing_csv_and_bad_responses():
    with pytest.raises(InputError, match="neither a preset"):
        parse_srf("/no/such/file.csv")
    with pytest.raises(InputError, match=">= 0"):
        SpectralResponse(("a",), np.array([1.0, 2.0]), np.array([[1.0, -1.0]]))
    with pytest.raises(InputError, match="all-zero"):
        SpectralResponse(("a",), np.array([1.0, 2.0]), np.zeros((1, 2)))
    with pytest.raises(InputError, match="wavelength metadata"):
        parse_srf("rgb").matrix([np.nan, 500.0])


def test_to_dict_round_trip_gives_the_same_matrix():
    s2 = parse_srf("sentinel2a:B1,B2,B3")
    again = SpectralResponse.from_dict(s2.to_dict())
    assert again.band_names == s2.band_names
    np.testing.assert_array_equal(again.matrix(CAVE_NM), s2.matrix(CAVE_NM))
    with pytest.raises(InputError, match="band_names"):
        SpectralResponse.from_dict({"wavelengths_nm": [1, 2]})


def test_arrays_are_read_only():
    s2 = parse_srf("sentinel2a")
    with pytest.raises(ValueError):
        s2.responses[0, 0] = 2.0


def test_shipped_tables_match_the_shared_data(shared_data):
    shipped = sorted(p.name for p in SRF_DIR.glob("*.csv"))
    assert shipped == sorted(p.name for p in (shared_data / "srf").glob("*.csv"))
    for name in shipped:
        text = (shared_data / "srf" / name).read_text(encoding="utf-8")
        if name == "landsat9_oli2.csv":
            text = _without_repeated_rows(text)
        assert (SRF_DIR / name).read_text(encoding="utf-8") == text, name


def _without_repeated_rows(text: str) -> str:
    """The table less each band's rows that repeat a row (wavelength, response) of a band listed before it."""
    lines = text.splitlines(keepends=True)
    kept, earlier, current, rows = lines[:1], set(), None, set()
    for line in lines[1:]:
        label, row = line.rsplit(",", 2)[0], line.split(",")[-2:]
        if label != current:
            earlier, current, rows = earlier | rows, label, set()
        rows.add(tuple(v.strip() for v in row))
        if tuple(v.strip() for v in row) not in earlier:
            kept.append(line)
    return "".join(kept)


def test_shipped_tables_stay_small():
    sizes = {p.name: p.stat().st_size for p in SRF_DIR.glob("*.csv")}
    assert len(sizes) == 16 and max(sizes.values()) < 100_000 and sum(sizes.values()) < 700_000


def test_band_ranges_follow_the_sensor_order():
    assert parse_srf("sentinel2a:B8-B9,B2").band_names == ("B8", "B8A", "B9", "B2")
    assert parse_srf("enmap:b1-B3,B10").band_names == ("B1", "B2", "B3", "B10")
    with pytest.raises(InputError, match=r"Unknown band\(s\) \['B9-B8'\].*B1-B224.*a range such as B2-B4"):
        parse_srf("enmap:B9-B8")


# A scene whose last band is 889 nm, like a VNIR camera: Sentinel-2 B8 (760-907 nm) runs past it.
VNIR_889_NM = np.arange(400.0, 890.0, 3.0)


def test_a_band_running_past_the_hsi_warns_with_the_missing_share(caplog):
    s2 = parse_srf("sentinel2a:B4,B8")
    missing = s2.missing_shares(VNIR_889_NM)
    assert missing[0] == 0.0 and 0.03 < missing[1] < 0.1
    with caplog.at_level(logging.WARNING, logger="cofusion.core.srf"):
        R = s2.matrix(VNIR_889_NM)
    assert R.shape == (2, VNIR_889_NM.size)
    [record] = caplog.records
    assert f"'B8': {100 * missing[1]:.0f} % of its response lies outside the HSI's wavelengths 400.0-889.0 nm" in (
        record.getMessage())
    # With the HSI band widths known, the last band reaches half its FWHM further: less is missing.
    assert s2.missing_shares(VNIR_889_NM, 10.0)[1] < missing[1]


def test_a_band_mostly_past_the_hsi_is_refused_with_the_fix():
    with pytest.raises(InputError, match=r"'B8' \(response 760-907 nm\): 7\d % of its response lies outside the "
                                         r"HSI's wavelengths 400.0-805.0 nm.*\(here B2,B3,B4; e.g. "
                                         r"'sentinel2a:B2,B3,B4'\)"):
        parse_srf("sentinel2a").matrix(np.arange(400.0, 806.0, 5.0))
    with pytest.raises(InputError, match="none of this sensor's bands is covered"):
        parse_srf("sentinel2a:B11,B12").matrix(CAVE_NM)


def test_gaps_between_hsi_bands_count_as_missing(caplog):
    # Bands 1360-1440 nm left out (water vapour), as in AVIRIS scenes: Sentinel-2 B10 (1337-1412 nm) falls in it.
    hsi = np.concatenate([np.arange(1000.0, 1351.0, 10.0), np.arange(1450.0, 1800.0, 10.0)])
    b10 = parse_srf("sentinel2a:B10")
    with pytest.raises(InputError, match=r"'B10'.*1000.0-1790.0 nm except 1350.0-1450.0 nm"):
        b10.matrix(hsi)
    narrower = np.concatenate([np.arange(1000.0, 1381.0, 10.0), np.arange(1420.0, 1800.0, 10.0)])
    with caplog.at_level(logging.WARNING, logger="cofusion.core.srf"):
        b10.matrix(narrower)
    assert "'B10'" in caplog.text and "except 1380.0-1420.0 nm" in caplog.text
    # A single missing band is no gap.
    assert parse_srf("sentinel2a:B11").missing_shares(np.delete(np.arange(1500.0, 1700.0, 10.0), 10))[0] == 0.0


def test_the_benchmark_set_ups_lose_no_response(shared_data, caplog):
    from cofusion.core.raster import read_info

    with caplog.at_level(logging.WARNING, logger="cofusion.core.srf"):
        parse_srf("sentinel2a:B1,B2,B3").matrix(CAVE_NM)
        for scene in ("aviris_jasper_ridge.tif", "houston2018_casi_hs.tif"):
            info = read_info(shared_data / scene)
            srf = parse_srf("sentinel2a:B2,B3,B4,B8")
            srf.matrix(info.wavelengths_nm, info.fwhm_nm)
            assert srf.missing_shares(info.wavelengths_nm).max() < 1e-6, scene
    assert caplog.records == []
