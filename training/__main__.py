# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion.training`` (see ``cli.py``), under the signal policy from its first line
(``core.interrupts.run_command``)."""
import sys

from ..core.interrupts import run_command


def _main():
    from .cli import main

    return main


sys.exit(run_command(_main, "nothing was written"))
