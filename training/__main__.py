# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion.training`` (see ``cli.py``)."""
import sys

from .cli import main

sys.exit(main())
