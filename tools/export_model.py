# SPDX-License-Identifier: GPL-2.0-or-later
"""Store a trained checkpoint for shipping: float16 weights, and the training data described in its card.

    .venv/bin/python tools/export_model.py SRC.safetensors DST.safetensors --data "what it was trained on"

Benchmark runs train on temporary files whose paths mean nothing to a user; ``--data`` replaces the card's
``provenance.inputs`` with a description. Weights are stored as float16 (half the file; cast back to float32 when
loaded), everything else is kept.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from cofusion.core.checkpoint import load_checkpoint, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--data", required=True, help="description of the training data, for the card")
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.source)
    card = replace(checkpoint.card, provenance={**checkpoint.card.provenance, "inputs": [args.data]})
    save_checkpoint(args.target, checkpoint.model, card, storage_dtype=torch.float16)


if __name__ == "__main__":
    main()
