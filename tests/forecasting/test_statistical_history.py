"""What a mutation review of the forecasting code found untested: the statistical methods take
exactly two seasons after the last gap, and refuse one day fewer."""

from __future__ import annotations

import numpy as np
import pytest

from mtlshare.errors import DataError
from mtlshare.forecasting.statistical import fitted_stretch


def test_exactly_two_seasons_after_the_last_gap_are_enough():
    history = np.arange(20, dtype=float)
    history[5] = np.nan  # 14 days follow: two weeks
    np.testing.assert_array_equal(fitted_stretch("autoets", history, 7), np.arange(6, 20))
    history[6] = np.nan  # 13 days
    with pytest.raises(DataError, match="13 observed days after the last missing one; it needs"):
        fitted_stretch("autoets", history, 7)
    with pytest.raises(DataError, match=r"'s1' has 13 observed days .* before the origin"):
        fitted_stretch("autoets", history, 7, series="s1")
