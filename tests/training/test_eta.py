# SPDX-License-Identifier: GPL-2.0-or-later
"""The training ETA is right from the first step: the steps left at the run's own step rate, or the time left,
whichever ends first; never extrapolated from the start-up."""
from __future__ import annotations

import pytest

from cofusion.training.trainer import TrainSettings, eta_seconds


def test_the_first_step_gives_the_steps_left_at_its_rate():
    settings = TrainSettings(iterations=2000)
    # 55 s of start-up, then 1 step of 0.5 s: 1999 steps left at 0.5 s, not 55.5 s x 2000
    assert eta_seconds(settings, 1, elapsed=55.5, loop_seconds=0.5, loop_steps=1) == pytest.approx(999.5)


def test_a_time_budget_counts_down_and_the_earlier_limit_wins():
    assert eta_seconds(TrainSettings(iterations=None, minutes=5), 3, 60.0, 2.0, 3) == pytest.approx(240.0)
    both = TrainSettings(iterations=100, minutes=5)
    assert eta_seconds(both, 10, 30.0, 20.0, 10) == pytest.approx(180.0)  # 90 steps x 2 s
    assert eta_seconds(both, 10, 290.0, 20.0, 10) == pytest.approx(10.0)  # the time limit first


def test_a_resumed_run_uses_its_own_rate_and_nothing_is_known_before_a_step():
    settings = TrainSettings(iterations=1000)
    assert eta_seconds(settings, 600, 400.0, 10.0, 100) == pytest.approx(400 * 0.1)
    assert eta_seconds(settings, 500, 400.0, 0.0, 0) is None
    assert eta_seconds(settings, 1000, 400.0, 10.0, 100) == 0.0
