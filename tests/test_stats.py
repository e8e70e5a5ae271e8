import math

import numpy as np
import pytest

from bench.analyze.stats import summarize


@pytest.mark.parametrize("values", [[1.0], [3.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0], list(np.linspace(0.1, 9.3, 17))])
def test_summarize_matches_numpy(values):
    s = summarize(values)
    arr = np.asarray(values)
    assert s["n"] == len(values)
    assert s["median"] == pytest.approx(np.median(arr))
    assert s["q1"] == pytest.approx(np.percentile(arr, 25))
    assert s["q3"] == pytest.approx(np.percentile(arr, 75))
    assert s["iqr"] == pytest.approx(np.percentile(arr, 75) - np.percentile(arr, 25))
    assert (s["min"], s["max"]) == (arr.min(), arr.max())
    stdev = float(np.std(arr, ddof=1)) if len(arr) > 1 else 0.0
    assert s["stdev"] == pytest.approx(stdev)
    assert s["cv"] == pytest.approx(stdev / arr.mean())


def test_summarize_empty():
    assert summarize([])["median"] is None


def test_cv_of_zero_mean_is_infinite():
    assert math.isinf(summarize([0.0, 0.0])["cv"])
