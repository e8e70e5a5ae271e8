"""One number per process and one per run: how a case's timed rounds become the values comparisons use.

A process's rounds share that process's draw (its thread pools, its allocator, the machine's state of the
moment), so comparisons and the regression gate never treat rounds as independent samples: each process
contributes one value, and its uncertainty is the spread between processes (bench.analyze.paired). Two rules,
each for its reader:

* :func:`process_value`, for the derived comparisons and the report: the **median** of the process's rounds.
  With the 3-5 rounds a process times, one round caught by another job's burst does not move it (a 20 %-trimmed
  mean of 3 rounds trims nothing), and a case measured in one process reads the same median it always stored.
* :func:`run_value`, for the regression gate (a run's value per process; several processes of one run are
  combined by their geometric mean, :class:`bench.analyze.normalize.CaseValues`): the **mean of the best half
  of the rounds**, on logs (:func:`best_half`). Contention on a shared runner only ever slows a round down
  (another job's burst, the hypervisor's steal), so the fastest rounds are the ones that measured the code and
  the slow tail measures the neighbours; conbench takes the best repetition for the same reason, and half the
  rounds keeps the value steady where one best round would not be. Measured on the project's shared 2-core box
  against the 20 %-trimmed geometric mean it replaces (:func:`trimmed_geomean`), between-run sd of a case's
  run value:

  - the gate collection (``scripts/gate_benchmark.py``, 1 + 1 threads, 9 unchanged runs, load average 0.8-5.6
    from other jobs and the busy process): 10.9 / 20.6 / 12.3 / 4.8 % against 16.9 / 26.2 / 20.9 / 9.4 % for
    the four cases: lower in every case;
  - ``gpus=2/batch=512`` alone, 4 runs per thread setting at load average 5-7: 4.8 % against 14.9 % (default
    pools), 5.0 % against 9.7 % (1 + 1 threads);
  - the same case, 6 runs per setting at load average 1.4-2.5 (quieter): 19.8 % against 18.6 % (default pools,
    whose per-process draws move the whole run, not single rounds) and 3.4 % against 3.6 % (1 + 1 threads).

  So: no worse on a quiet machine, two to three times steadier on a loaded one. ``scripts/gate_benchmark.py
  analyze`` prints the spread under both for every case of a collection, so the choice is checked again on
  each runner. Which half is best depends on the metric: the highest throughputs, the shortest seconds
  (``bigger_is_better``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

TRIM = 0.2  # trimmed_geomean: proportion cut from each end: 1 of 5 rounds, 2 of 10


def logs(samples: Sequence[float]) -> np.ndarray:
    """Natural logs of positive finite samples; anything else is a ValueError."""
    values = np.asarray(samples, dtype=float)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("samples must be positive finite numbers")
    return np.log(values)


def best_half(samples: Sequence[float], bigger_is_better: bool = True) -> float:
    """The geometric mean of the best ceil(n / 2) samples: the highest throughputs, or the shortest seconds."""
    ordered = np.sort(logs(samples))
    keep = math.ceil(len(ordered) / 2)
    best = ordered[-keep:] if bigger_is_better else ordered[:keep]
    return float(math.exp(float(np.mean(best))))


def trimmed_geomean(samples: Sequence[float]) -> float:
    """The 20 %-trimmed geometric mean (the rule before the best half; kept for comparing the two)."""
    return float(math.exp(stats.trim_mean(logs(samples), TRIM)))


def process_value(samples: Sequence[float]) -> float:
    """One value for one process's rounds of a case, for derived comparisons and the report: their median."""
    return float(np.median(np.exp(logs(samples))))


def run_value(samples: Sequence[float], *, bigger_is_better: bool = True) -> float:
    """The regression gate's value of one process's rounds (a run measured in one process: the run's value)."""
    return best_half(samples, bigger_is_better)


def geomean(values: Sequence[float]) -> float:
    """The plain geometric mean (of process or run values: each counts once)."""
    return float(math.exp(np.mean(logs(values))))
