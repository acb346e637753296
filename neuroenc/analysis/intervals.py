"""95% intervals for a paired difference B - A, and what they let the report say.

Two intervals, for two questions (the sweep report prints both, :mod:`neuroenc.analysis.report`):

- :func:`paired_t_interval`: the differences of jobs paired by data and seed, one value per pair,
  treated as a sample of what training B instead of A gives. Its width includes training noise
  (and the data draw where the data seed varies); it needs two pairs and trusts that the
  pair differences are roughly normal, which is all three seeds allow.
- :func:`stratified_bootstrap_interval`: one difference per neuron, neurons resampled with
  replacement within each group (a dataset) and the mean over all neurons recomputed; the 2.5th
  and 97.5th percentiles of those means. It holds the trained models fixed: it says whether the
  difference is consistent across neurons, not whether retraining would repeat it. The RNG seed is
  fixed, so a report is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
# resampled indices held in memory at once: a few thousand neurons by 10,000 resamples would be GBs
_BOOTSTRAP_CHUNK = 2_000_000


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def covers_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def paired_t_interval(differences) -> Interval | None:
    """Mean of ``differences`` and its two-sided :data:`LEVEL` Student t interval; None for fewer
    than two values (no spread to scale by)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        return None
    mean = float(d.mean())
    half = float(stats.t.ppf(0.5 + LEVEL / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return Interval(mean, mean - half, mean + half)


def stratified_bootstrap_interval(groups, resamples: int = BOOTSTRAP_RESAMPLES,
                                  seed: int = BOOTSTRAP_SEED) -> Interval | None:
    """Mean over every value of ``groups`` (sequences of per-neuron differences) and its
    percentile bootstrap interval at :data:`LEVEL`, each group resampled within itself so every
    resample keeps the groups' sizes; None for fewer than two values."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    n = sum(g.size for g in groups)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    sums = np.zeros(resamples)
    for g in groups:
        step = max(1, _BOOTSTRAP_CHUNK // g.size)
        for start in range(0, resamples, step):
            stop = min(resamples, start + step)
            sums[start:stop] += g[rng.integers(0, g.size, (stop - start, g.size))].sum(axis=1)
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(sums / n, [tail, 100 - tail])
    return Interval(float(np.concatenate(groups).mean()), float(low), float(high))


def verdict(interval: Interval | None) -> str:
    """What B - A's interval lets one say: better, worse, or no detectable difference."""
    if interval is None:
        return "too few pairs for an interval"
    if interval.covers_zero():
        return "no detectable difference"
    if interval.low > 0:
        return f"B better than A by {interval.mean:.4f} [{interval.low:.4f}, {interval.high:.4f}]"
    return f"B worse than A by {-interval.mean:.4f} [{-interval.high:.4f}, {-interval.low:.4f}]"
