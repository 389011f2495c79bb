# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion``: the command line (see ``cli.py``).

The signal policy (``core.interrupts``) is in force before the command line's modules load, so that a Ctrl-C or a
SIGTERM during start-up ends the run like one during the work.
"""
import sys

from .core.interrupts import Interrupts

with Interrupts() as interrupts:
    try:
        from .cli import main

        code = main(interrupts=interrupts)
    except KeyboardInterrupt:  # a second signal before main() took over
        sys.stderr.write("interrupted; no output was written\n")
        code = interrupts.exit_code
sys.exit(code)
