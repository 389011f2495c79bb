# SPDX-License-Identifier: GPL-2.0-or-later
"""A checkpoint is untrusted input: a generator of corrupted model cards and weights over every field.

Each corruption of the tiny model (wrong type, out of range, huge, deeply nested, too long, statistics that are not
finite or too small, weights that are NaN, integers or of the wrong shape, a header that announces gigabytes) must be
refused by the loader with a one-line CheckpointError naming the file, and by the `python -m cofusion fuse` CLI with
one 'error: ...' line and exit 2, leaving the disk as it was. Card problems are refused before the network is built
(build_model is replaced by a trap), and the ones that would allocate gigabytes are loaded under an address-space
limit in a child process. A checkpoint that loads but predicts NaN or infinity is refused at fusion time.
"""
from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cofusion import cli
from cofusion.core.errors import CheckpointError

from .conftest import HSI, MSI, TILE, WAVELENGTHS, run_cli, run_core, run_qgis, save_tiny_model, tree

Card = dict
Tensors = dict


@dataclass(frozen=True)
class Corrupt:
    """One corruption: `make(card, tensors)` -> (card JSON text, tensors) of the file to write, or bytes for the
    whole file; `words` the message must contain (regular expressions); `stage` 'card' (refused before any network
    is built) or 'weights'."""

    make: Callable[[Card, Tensors], tuple[str, Tensors] | bytes]
    words: tuple[str, ...]
    stage: str = "card"


def _config(**changes) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    def make(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
        card["config"].update(changes)
        return json.dumps(card), tensors
    return make


def _field(key: str, value) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    """Top-level card field `key` set to `value` (deleted for ...; a dotted key sets a nested one)."""
    def make(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
        *parents, last = key.split(".")
        target = card
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[last]
        else:
            target[last] = value(target[last]) if callable(value) else value
        return json.dumps(card), tensors
    return make


def _text(transform: Callable[[str], str]) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    """The card's JSON text rewritten (for what json.dumps cannot write, e.g. 100 000 levels of nesting)."""
    return lambda card, tensors: (transform(json.dumps(card)), tensors)


def _nested(depth: int) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    """The card with provenance {"deep": [[[...]]]}, `depth` lists deep: 2 + depth levels in all."""
    def make(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
        card["provenance"] = {"deep": "HERE"}
        return json.dumps(card).replace('"HERE"', "[" * depth + "]" * depth), tensors
    return make


def _tensor(name: str | None, change: Callable) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    """Tensor `name` (every tensor for None) replaced by change(tensor)."""
    def make(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
        names = list(tensors) if name is None else [name]
        for key in names:
            tensors[key] = change(tensors[key]).contiguous()
        return json.dumps(card), tensors
    return make


def _set_first(value: float) -> Callable:
    def change(t):
        t = t.clone()
        t.view(-1)[0] = value
        return t
    return change


def _to(dtype_name: str) -> Callable:
    import torch

    return lambda t: t.to(getattr(torch, dtype_name))


def _drop_tensor(name: str) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    def make(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
        del tensors[name]
        return json.dumps(card), tensors
    return make


def _extra_tensor(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
    import torch

    tensors["backdoor.weight"] = torch.zeros(3)
    return json.dumps(card), tensors


def _huge_header(card: Card, tensors: Tensors) -> bytes:
    return struct.pack("<Q", 8 * 1024**3) + b'{"__metadata__": {}}'


def _stats(key: str, value) -> Callable[[Card, Tensors], tuple[str, Tensors]]:
    return _field(f"normalization.{key}", value)


def _std_tiny_next_to_the_mean(card: Card, tensors: Tensors) -> tuple[str, Tensors]:
    card["normalization"].update(hsi_mean=[100.0] * HSI, hsi_std=[1e-9] * HSI)
    return json.dumps(card), tensors


NAN, INF = float("nan"), float("inf")

CORRUPTIONS: dict[str, Corrupt] = {}

# every integer field of the config: a float, a bool, a string, null, below and far above its range
INTEGER_FIELDS = {"hsi_bands": HSI, "msi_bands": MSI, "scale": 2, "width": 8, "blocks_per_level": 1, "top_k": 4,
                  "saliency_stride": 4, "domain_prototypes": 16, "consistency_steps": 2}
for _name, _good in INTEGER_FIELDS.items():
    _word = "scale factor" if _name == "scale" else "bands" if _name.endswith("_bands") else _name
    for _label, _value in (("float", float(_good)), ("bool", True), ("string", str(_good)), ("null", None),
                           ("negative", -1), ("huge", 10**6)):
        CORRUPTIONS[f"config_{_name}_{_label}"] = Corrupt(_config(**{_name: _value}), ("model config is invalid",
                                                                                       _word))
# the float fields: a string, a bool, null, NaN, out of range, overflowing
for _name, _low, _high in (("dropout", -0.5, 5), ("trust_falloff", 0.5, 1e308)):
    for _label, _value in (("string", "0.5"), ("bool", True), ("null", None), ("nan", NAN), ("below", _low),
                           ("above", _high)):
        CORRUPTIONS[f"config_{_name}_{_label}"] = Corrupt(_config(**{_name: _value}), ("model config is invalid",
                                                                                       _name))
for _name in ("spacam", "specam", "sscfm"):
    for _label, _value in (("int", 1), ("string", "true"), ("null", None)):
        CORRUPTIONS[f"config_{_name}_{_label}"] = Corrupt(_config(**{_name: _value}), (_name, "true or false"))
for _label, _value in (("unknown", "morlet_x"), ("continuous", "morl"), ("number", 3), ("empty", ""),
                       ("null", None)):
    CORRUPTIONS[f"config_wavelet_{_label}"] = Corrupt(_config(wavelet=_value), ("wavelet", "PyWavelets"))
for _label, _value in (("unknown", "magic"), ("number", 1), ("list", ["blend"])):
    CORRUPTIONS[f"config_base_{_label}"] = Corrupt(_config(base=_value), ("base", "blend"))
CORRUPTIONS.update({
    # sizes that would allocate gigabytes: refused with the numbers before anything is built
    "config_width_4096": Corrupt(_config(width=4096), ("width 4096", "1024")),
    "config_blocks_10000": Corrupt(_config(blocks_per_level=10000), ("blocks_per_level 10000", "1 to 16")),
    "config_width_1024_memory": Corrupt(_config(width=1024, top_k=8), ("M parameters", "GiB", "smaller width")),
    "config_width_512_stride_2_memory": Corrupt(_config(width=512, saliency_stride=2), ("GiB", "at most")),
    "config_width_256_blocks_16_memory": Corrupt(_config(width=256, blocks_per_level=16), ("M parameters",)),
    "config_field_missing": Corrupt(_field("config.hsi_bands", ...), ("model config is incomplete", "hsi_bands")),
    "config_field_unknown": Corrupt(_config(layers=5), ("unknown fields", "layers")),
    "config_not_an_object": Corrupt(_field("config", [1, 2]), ("model config is a JSON list",)),
    "config_schema_newer": Corrupt(_config(schema_version=99), ("schema version 99",)),
    # the JSON itself
    "json_nested_100000_deep": Corrupt(_nested(100_000), ("nests 100002 levels", "than the 8 a card may")),
    "json_nested_9_deep": Corrupt(_nested(9), ("nests 11 levels",)),
    "json_longer_than_4_mib": Corrupt(_field("provenance", {"padding": "x" * (4 * 1024**2)}),
                                      ("characters long",)),
    "json_integer_of_10000_digits": Corrupt(_text(lambda t: t.replace('"width": 8', '"width": ' + "9" * 10_000)),
                                            ("not valid JSON", "10000 digits")),
    "json_invalid": Corrupt(_text(lambda t: t[:-5]), ("not valid JSON",)),
    "json_top_level_array": Corrupt(lambda card, tensors: (json.dumps([card]), tensors),
                                    ("not a CoFusion checkpoint",)),
    "json_no_format_tag": Corrupt(_field("format", ...), ("not a CoFusion checkpoint",)),
    "json_format_version_2": Corrupt(_field("format_version", 2), ("format version 2", "Update the plugin")),
    "json_no_normalization": Corrupt(_field("normalization", ...), ("no normalization",)),
    # normalisation statistics
    "stats_not_an_object": Corrupt(_field("normalization", [0, 1]), ("normalisation must be an object",)),
    "stats_key_missing": Corrupt(_stats("msi_std", ...), ("exactly hsi_mean",)),
    "stats_key_extra": Corrupt(_field("normalization.extra", [1.0]), ("exactly hsi_mean",)),
    "stats_too_short": Corrupt(_stats("hsi_mean", lambda v: v[:-1]), ("'hsi_mean' must hold 5 numbers",)),
    "stats_strings": Corrupt(_stats("hsi_std", lambda v: [str(x) for x in v]), ("'hsi_std' must hold 5 numbers",)),
    "stats_bools": Corrupt(_stats("msi_mean", lambda v: [True] * len(v)), ("'msi_mean' must hold 3 numbers",)),
    "stats_nan_mean": Corrupt(_stats("hsi_mean", lambda v: [NAN] + v[1:]), ("'hsi_mean' must hold 5 finite",)),
    "stats_inf_std": Corrupt(_stats("msi_std", lambda v: [INF] + v[1:]), ("'msi_std' must hold 3 finite",)),
    "stats_huge_mean": Corrupt(_stats("hsi_mean", lambda v: [1e300] + v[1:]), ("'hsi_mean' must hold 5 finite",)),
    "stats_negative_std": Corrupt(_stats("hsi_std", lambda v: [-1.0] + v[1:]), ("must be positive",)),
    "stats_zero_std": Corrupt(_stats("msi_std", lambda v: [0.0] + v[1:]), ("must be positive",)),
    "stats_hsi_std_1e-38": Corrupt(_stats("hsi_std", lambda v: [1e-38] * len(v)), ("'hsi_std' of band 1",
                                                                                   "overflow")),
    "stats_msi_std_1e-38": Corrupt(_stats("msi_std", lambda v: [1.0, 1e-38, 1.0]), ("'msi_std' of band 2",)),
    "stats_std_tiny_next_to_the_mean": Corrupt(_std_tiny_next_to_the_mean, ("'hsi_std' of band 1 is 1e-09",
                                                                            "scale 100")),
    # wavelengths, the spectral response, names, provenance, metrics
    "wavelengths_too_few": Corrupt(_field("hsi_wavelengths_nm", list(WAVELENGTHS[:-1])),
                                   ("hsi_wavelengths_nm must hold 5",)),
    "wavelengths_nan": Corrupt(_field("hsi_wavelengths_nm", [NAN, *WAVELENGTHS[1:]]), ("finite band centres",)),
    "wavelengths_negative": Corrupt(_field("hsi_wavelengths_nm", [-450.0, *WAVELENGTHS[1:]]), ("above 0",)),
    "wavelengths_zero": Corrupt(_field("hsi_wavelengths_nm", [0.0, *WAVELENGTHS[1:]]), ("above 0",)),
    "wavelengths_huge": Corrupt(_field("hsi_wavelengths_nm", [*WAVELENGTHS[:-1], 1e9]), ("at most 100000",)),
    "wavelengths_strings": Corrupt(_field("hsi_wavelengths_nm", [str(w) for w in WAVELENGTHS]), ("must hold 5",)),
    "wavelengths_not_a_list": Corrupt(_field("hsi_wavelengths_nm", "450-850"), ("must hold 5",)),
    "srf_wrong_rows": Corrupt(_field("srf", [[0.2] * HSI] * (MSI + 1)), ("spectral response must be 3 x 5",)),
    "srf_wrong_columns": Corrupt(_field("srf", [[0.25] * (HSI - 1)] * MSI), ("spectral response row must hold 5",)),
    "srf_nan": Corrupt(_field("srf", [[NAN] * HSI] * MSI), ("finite values >= 0",)),
    "srf_negative": Corrupt(_field("srf", [[-0.2] * HSI] * MSI), ("finite values >= 0",)),
    "msi_band_names_wrong_count": Corrupt(_field("msi_band_names", ["B2", "B3"]), ("3 names",)),
    "msi_band_names_not_strings": Corrupt(_field("msi_band_names", [2, 3, 4]), ("3 names",)),
    "provenance_a_list": Corrupt(_field("provenance", ["mode"]), ("provenance must be a JSON object",)),
    "metrics_strings": Corrupt(_field("metrics", {"PSNR": "high"}), ("metrics must map names to numbers",)),
    # the weights
    "weights_one_nan": Corrupt(_tensor("head.2.weight", _set_first(NAN)), ("NaN, infinite", "head.2.weight"),
                               "weights"),
    "weights_all_nan": Corrupt(_tensor(None, lambda t: t * NAN), ("NaN, infinite",), "weights"),
    "weights_one_inf": Corrupt(_tensor("lr_embed.weight", _set_first(INF)), ("lr_embed.weight",), "weights"),
    "weights_radii_nan": Corrupt(_tensor("domain.radii", _set_first(NAN)), ("domain.radii",), "weights"),
    "weights_radii_negative": Corrupt(_tensor("domain.radii", _set_first(-1.0)), ("domain.radii",), "weights"),
    "weights_int8_right_shapes": Corrupt(_tensor(None, _to("int8")), ("stored as I8", "floating point"), "weights"),
    "weights_one_int64": Corrupt(_tensor("head.2.bias", _to("int64")), ("stored as I64", "head.2.bias"), "weights"),
    "weights_bool": Corrupt(_tensor("head.2.bias", _to("bool")), ("stored as BOOL",), "weights"),
    "weights_float8": Corrupt(_tensor("head.2.weight", _to("float8_e4m3fn")), ("stored as F8_E4M3",), "weights"),
    "weights_complex": Corrupt(_tensor("head.2.bias", _to("complex64")), ("stored as C64",), "weights"),
    "weights_tensor_missing": Corrupt(_drop_tensor("head.2.weight"), ("1 tensors missing",), "weights"),
    "weights_tensor_extra": Corrupt(_extra_tensor, ("backdoor.weight",), "weights"),
    "weights_wrong_shape": Corrupt(_tensor("head.2.bias", lambda t: t[:-1]), ("another shape",), "weights"),
    # the file
    "header_announces_8_gib": Corrupt(_huge_header, ("not a readable CoFusion checkpoint", "8589934592 bytes")),
})


@pytest.fixture(scope="module")
def tiny_parts(tmp_path_factory) -> tuple[str, dict]:
    """The tiny model's card (JSON text) and tensors."""
    from safetensors import safe_open

    path = save_tiny_model(tmp_path_factory.mktemp("good") / "tiny.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()["cofusion"], {key: handle.get_tensor(key) for key in handle.keys()}


# safetensors' names of the dtypes a corrupted card stores (the format's, whatever the installed library writes).
SAFETENSORS_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                      "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
                      "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "complex64": "C64"}


def safetensors_bytes(tensors: dict, metadata: dict) -> bytes:
    """A safetensors file written by hand (8-byte header length, JSON header padded to 8 bytes, the data): for the
    dtypes an older safetensors cannot write (0.5, Debian 13's, has no complex64)."""
    import torch

    header: dict = {"__metadata__": metadata}
    chunks, offset = [], 0
    for name, tensor in tensors.items():
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[str(tensor.dtype).removeprefix("torch.")],
                        "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def safetensors_parses(dtype: str) -> bool:
    """Whether the installed safetensors parses a header holding a tensor of safetensors dtype `dtype`."""
    from safetensors import SafetensorError, deserialize

    size = {"C64": 8}.get(dtype, 4)
    header = json.dumps({"x": {"dtype": dtype, "shape": [1], "data_offsets": [0, size]}}).encode()
    header += b" " * (-len(header) % 8)
    try:
        deserialize(struct.pack("<Q", len(header)) + header + bytes(size))
    except SafetensorError:
        return False
    return True


# What the message says where the installed safetensors itself refuses a dtype it does not know (0.5, Debian 13's,
# has no C64): the header does not parse, so the file is refused as unreadable before CoFusion reads the dtypes.
UNKNOWN_TO_SAFETENSORS = {"weights_complex": ("C64", ("not a readable CoFusion checkpoint",
                                                      "InvalidHeaderDeserialization"))}


def write_corrupt(case: str, parts: tuple[str, dict], folder: Path) -> Path:
    from safetensors.torch import save_file

    text, tensors = parts
    made = CORRUPTIONS[case].make(json.loads(text), dict(tensors))
    path = folder / f"{case}.safetensors"
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        card_text, tensors = made
        try:
            save_file(tensors, str(path), metadata={"cofusion": card_text})
        except KeyError:  # a dtype this safetensors cannot write (its dtype table has no entry for it)
            path.write_bytes(safetensors_bytes(tensors, {"cofusion": card_text}))
    return path


@pytest.fixture
def no_build(monkeypatch):
    """build_model replaced by a trap: a card problem must be refused before any network is built."""
    import cofusion.core.checkpoint as checkpoint

    def trap(config):
        raise AssertionError(f"build_model was called for {config}")

    monkeypatch.setattr(checkpoint, "build_model", trap)


def test_the_generator_covers_every_config_field_and_the_good_parts_load(tiny_parts, tmp_path):
    from dataclasses import fields

    from cofusion.core.checkpoint import load_checkpoint
    from cofusion.core.model import ModelConfig

    covered = {name.split("_", 1)[1].rsplit("_", 1)[0] for name in CORRUPTIONS if name.startswith("config_")}
    assert {f.name for f in fields(ModelConfig)} <= covered
    good = tmp_path / "good.safetensors"
    from safetensors.torch import save_file

    save_file(tiny_parts[1], str(good), metadata={"cofusion": tiny_parts[0]})
    assert load_checkpoint(good).card.config.width == 8
    assert len(CORRUPTIONS) >= 120


def test_a_hand_written_safetensors_file_loads_like_the_librarys(tiny_parts, tmp_path):
    """safetensors_bytes (the corruptions' writer where the installed safetensors lacks a dtype) writes the format."""
    import torch
    from safetensors import safe_open

    from cofusion.core.checkpoint import load_checkpoint

    path = tmp_path / "by_hand.safetensors"
    path.write_bytes(safetensors_bytes(tiny_parts[1], {"cofusion": tiny_parts[0]}))
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {"cofusion": tiny_parts[0]} and set(handle.keys()) == set(tiny_parts[1])
        assert all(torch.equal(handle.get_tensor(k), t) for k, t in tiny_parts[1].items())
    assert load_checkpoint(path).card.config.width == 8


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupted_card_is_refused_in_one_line_before_anything_is_built(case, tiny_parts, tmp_path, request):
    from cofusion.core.checkpoint import load_checkpoint, read_card

    bad = CORRUPTIONS[case]
    path = write_corrupt(case, tiny_parts, tmp_path)
    if bad.stage == "card":
        request.getfixturevalue("no_build")
    before = tree(tmp_path)
    loaders = (load_checkpoint, read_card) if bad.stage == "card" else (load_checkpoint,)
    for load in loaders:
        with pytest.raises(CheckpointError) as caught:
            load(path)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message, message
        words = bad.words
        if case in UNKNOWN_TO_SAFETENSORS and not safetensors_parses(UNKNOWN_TO_SAFETENSORS[case][0]):
            words = UNKNOWN_TO_SAFETENSORS[case][1]
        assert all(__import__("re").search(word, message) for word in words), (words, message)
    assert tree(tmp_path) == before


CLI_CASES = [case for case in CORRUPTIONS if case.endswith(("_float", "_string", "_nan", "_huge"))
             or not case.startswith("config_")]


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_cli_refuses_a_corrupted_card_in_one_line_and_writes_nothing(case, tiny_parts, scene, tmp_path, capsys):
    model = write_corrupt(case, tiny_parts, tmp_path / "out")
    before = tree(tmp_path)
    code = cli.main(["fuse", "--lrhsi", str(scene.lr), "--hrmsi", str(scene.hr), "--model", str(model),
                     "--out", str(scene.out), "--device", "cpu", "--tile", str(TILE), "--overlap", "0", "-q"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == cli.EXIT_ERROR and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert tree(tmp_path) == before and not scene.out.exists()


@pytest.mark.qgis
@pytest.mark.parametrize("case", ["config_width_float", "config_width_4096", "json_nested_100000_deep",
                                  "stats_hsi_std_1e-38", "weights_all_nan", "weights_int8_right_shapes"])
def test_processing_shows_the_same_one_line_message(case, tiny_parts, scene, tmp_path, request):
    from qgis.core import QgsProcessingException

    scene = scene.replace(model=write_corrupt(case, tiny_parts, tmp_path))
    core = run_core(scene, None)
    assert core.error is CheckpointError
    ignore = (f"{scene.lr.name}.aux.xml", f"{scene.hr.name}.aux.xml")
    before = tree(tmp_path, ignore)
    outcome = run_qgis(scene, request)
    assert outcome.error is QgsProcessingException and outcome.message == core.message
    assert tree(tmp_path, ignore) == before


# ------------------------------------------------------------------------------------------ memory and recursion

HUGE_CASES = ["config_width_4096", "config_blocks_10000", "config_width_1024_memory",
              "config_width_512_stride_2_memory", "json_nested_100000_deep", "json_longer_than_4_mib",
              "header_announces_8_gib"]

LOAD_UNDER_LIMIT = """
import resource, sys
import torch
from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.errors import CheckpointError

with open("/proc/self/statm") as statm:
    used = int(statm.read().split()[0]) * resource.getpagesize()
limit = used + 512 * 1024**2  # what the process maps now, plus 512 MiB
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
sys.setrecursionlimit(100_000)  # deep enough for the nested card to reach the C stack if it were parsed recursively
for path in sys.argv[1:]:
    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        print("refused", str(exc).count(chr(10)))
    else:
        print("loaded")
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_huge_cards_are_refused_without_allocating_gigabytes(tiny_parts, tmp_path):
    paths = [str(write_corrupt(case, tiny_parts, tmp_path)) for case in HUGE_CASES]
    done = subprocess.run([sys.executable, "-c", LOAD_UNDER_LIMIT, *paths], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.split("\n")[:-1] == ["refused 0"] * len(HUGE_CASES), done.stdout


# ----------------------------------------------------------------------------------------------- at inference


def _overflowing_model(path: Path) -> Path:
    """A checkpoint that passes every load check (finite float32 weights) but whose head overflows float32."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    good = save_tiny_model(path.with_name("base.safetensors"))
    with safe_open(str(good), framework="pt") as handle:
        text, tensors = handle.metadata()["cofusion"], {key: handle.get_tensor(key) for key in handle.keys()}
    tensors["head.2.weight"] = torch.full_like(tensors["head.2.weight"], 3e38)
    save_file(tensors, str(path), metadata={"cofusion": text})
    good.unlink()
    return path


@pytest.mark.parametrize("entry", ["core", "cli"])
def test_a_model_that_predicts_nan_or_infinity_is_refused_and_writes_nothing(entry, scene, tmp_path, request):
    from cofusion.core.checkpoint import load_checkpoint

    model = _overflowing_model(tmp_path / "overflow.safetensors")
    load_checkpoint(model)  # it loads: only its predictions show the problem
    scene = scene.replace(model=model)
    before = tree(tmp_path)
    if entry == "core":
        outcome = run_core(scene, request)
        assert outcome.error is CheckpointError
        message = outcome.message
    else:
        message = run_cli(scene, request).message
    assert "\n" not in message and str(model) in message and "NaN or infinite" in message, message
    assert "train the model again" in message
    assert tree(tmp_path) == before and not scene.out.exists()


def test_a_prediction_is_checked_on_valid_pixels_only(tmp_path):
    """NaN where a tile has no valid pixel (outside the grid) is not the model's doing and is never written."""
    import numpy as np

    from cofusion.core.fuse import _predict

    class Half:
        scale, hsi_bands, msi_bands, align = 2, HSI, MSI, 16
        name = "The model half.safetensors"

        def __call__(self, lr, hr):
            out = np.ones((lr.shape[0], HSI, TILE, TILE), np.float32)
            out[:, :, :, TILE // 2:] = math.nan
            return out

    valid = np.zeros((TILE, TILE), bool)
    valid[:, : TILE // 2] = True
    lr, hr = np.zeros((HSI, TILE // 2, TILE // 2), np.float32), np.zeros((MSI, TILE, TILE), np.float32)
    assert _predict(Half(), [(lr, hr, valid)], TILE)[0] is not None
    valid[0, TILE // 2] = True
    with pytest.raises(CheckpointError, match="half.safetensors produced NaN or infinite values for 1 valid pixels"):
        _predict(Half(), [(lr, hr, valid)], TILE)


@pytest.mark.parametrize("changes", [{}, {"width": 16, "blocks_per_level": 2}, {"spacam": False, "sscfm": False},
                                     {"specam": False, "domain_prototypes": 0, "width": 12, "top_k": 3},
                                     {"base": "gsa", "saliency_stride": 8}])
def test_the_size_estimate_is_the_built_networks(changes):
    from cofusion.core.model import ModelConfig, build_model

    config = ModelConfig(HSI, MSI, 2, **{"width": 8, "top_k": 4, **changes})
    state = build_model(config).state_dict()
    assert config.parameter_count() == sum(t.numel() for t in state.values())
    assert config.tile_bytes(288) > 4 * config.parameter_count()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_bundled_model_and_models_in_every_storage_dtype_pass_every_check(dtype, tmp_path):
    import torch

    from cofusion.core.checkpoint import load_checkpoint, save_checkpoint

    root = Path(__file__).resolve().parents[2] / "resources" / "models" / "default.safetensors"
    assert load_checkpoint(root).card.config.hsi_bands == 198  # stored as float16
    tiny = load_checkpoint(save_tiny_model(tmp_path / "tiny.safetensors"))
    assert torch.isinf(tiny.model.domain.radii).all()  # an unfitted trust map: +inf radii are allowed there
    stored = save_checkpoint(tmp_path / f"{dtype}.safetensors", tiny.model, tiny.card, getattr(torch, dtype))
    assert load_checkpoint(stored).card == tiny.card
