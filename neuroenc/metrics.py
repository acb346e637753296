"""Bits per spike: the one definition used everywhere in neuroenc.

For neuron i over all valid bins of a split (the Neural Latents Benchmark's ``bits_per_spike``)::

    bps_i = (LL_model_i - LL_null_i) / (spikes_i * ln 2)

with Poisson log-likelihoods and a null model that predicts the neuron's mean count over the
same valid bins. The ``log(y!)`` terms cancel in the difference, so only four running sums per
neuron are needed, which makes the value exact when accumulated batch by batch or across DDP
ranks (the sums are float64 and reduced by summation):

    S_ylogr = sum y * log r,  S_r = sum r,  S_y = sum y,  n = number of valid bins
    LL_model - LL_null = S_ylogr - S_r - S_y * log(S_y / n) + S_y

Pooled scores (per session, overall) divide the summed LL differences by the summed spikes.
A silent neuron (S_y == 0) has an undefined per-neuron bps (NaN, left out of the neuron mean)
but its LL difference (-S_r: the null predicts exactly zero) still counts in pooled scores.
Nothing is clamped.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

LN2 = math.log(2.0)
_EPS = 1e-12  # only guards log(0) for rates; a correct model never predicts exactly zero


def ll_difference(s_ylogr: torch.Tensor, s_r: torch.Tensor, s_y: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Per-neuron Poisson LL(model) - LL(null) from the running sums (see module docstring)."""
    mean = torch.where(n > 0, s_y / n.clamp(min=1), torch.zeros_like(s_y))
    # y * log(mean) with the convention 0 * log 0 = 0
    null_term = torch.xlogy(s_y, mean)
    return s_ylogr - s_r - null_term + s_y


def bits_per_spike_from_sums(s_ylogr, s_r, s_y, n) -> torch.Tensor:
    """Per-neuron bits per spike; NaN where the neuron never spiked in the split."""
    diff = ll_difference(s_ylogr, s_r, s_y, n)
    return torch.where(s_y > 0, diff / (s_y.clamp(min=1e-300) * LN2), torch.full_like(diff, float("nan")))


def pooled_bits_per_spike(s_ylogr, s_r, s_y, n) -> torch.Tensor:
    """Sum of LL differences over neurons divided by their total spikes (in bits)."""
    diff = ll_difference(s_ylogr, s_r, s_y, n)
    return diff.sum() / (s_y.sum() * LN2)


def session_slices(session_sizes: dict[str, int]) -> dict[str, slice]:
    """Sessions laid end to end: neuron j of session s sits at ``slices[s].start + j``."""
    out, start = {}, 0
    for s, n in session_sizes.items():
        out[s] = slice(start, start + int(n))
        start += int(n)
    return out


class BitsPerSpike(Metric):
    """Accumulates the four per-neuron sums for a set of sessions laid end to end.

    ``session_sizes`` maps session id -> number of neurons; neuron j of session s sits at
    ``offset[s] + j`` in the state vectors. ``update`` takes rates and counts of shape
    ``(B, T, N)`` and a boolean/0-1 mask of the same shape (valid and scored bins).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, session_sizes: dict[str, int], **kwargs):
        super().__init__(**kwargs)
        self.session_ids = list(session_sizes)
        self.slices = session_slices(session_sizes)
        total = sum(int(n) for n in session_sizes.values())
        for name in ("s_ylogr", "s_r", "s_y", "n"):
            self.add_state(name, default=torch.zeros(total, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, session: str, rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> None:
        sl = self.slices[session]
        m = mask.to(torch.float64)
        r = rates.detach().to(torch.float64)
        y = counts.detach().to(torch.float64)
        # masked bins may hold anything (NaN counts included): zero them before the products
        y = torch.where(m > 0, y, torch.zeros_like(y))
        r = torch.where(m > 0, r, torch.ones_like(r))
        dims = tuple(range(r.ndim - 1))
        idx = torch.arange(sl.start, sl.stop, device=self.n.device)
        # out-of-place: states may have been created under inference mode by an earlier validate()
        self.s_ylogr = self.s_ylogr.index_add(0, idx, (y * torch.log(r.clamp(min=_EPS)) * m).sum(dims))
        self.s_r = self.s_r.index_add(0, idx, (r * m).sum(dims))
        self.s_y = self.s_y.index_add(0, idx, (y * m).sum(dims))
        self.n = self.n.index_add(0, idx, m.sum(dims))

    def per_neuron(self) -> torch.Tensor:
        return bits_per_spike_from_sums(self.s_ylogr, self.s_r, self.s_y, self.n)

    def compute(self) -> dict[str, torch.Tensor]:
        """``overall`` (pooled over all neurons), ``neuron_mean`` and one pooled value per session."""
        sums = (self.s_ylogr, self.s_r, self.s_y, self.n)
        out = {
            "overall": pooled_bits_per_spike(*sums),
            "neuron_mean": torch.nanmean(self.per_neuron()),
        }
        for s, sl in self.slices.items():
            out[f"session/{s}"] = pooled_bits_per_spike(*(x[sl] for x in sums))
        return out


class Correlation(Metric):
    """Per-neuron Pearson correlation of predicted rate and count over the valid scored bins of a
    split, for sessions laid end to end as in :class:`BitsPerSpike` (same ``update`` arguments).

    Accumulated as float64 sums (x = rate, y = count): n, S_x, S_y, S_xx, S_yy, S_xy, so the
    value is exact batch by batch and across DDP ranks. NaN where a neuron's count or predicted
    rate does not vary over the split.
    """

    full_state_update = False
    higher_is_better = True
    SUMS = ("n", "s_x", "s_y", "s_xx", "s_yy", "s_xy")

    def __init__(self, session_sizes: dict[str, int], **kwargs):
        super().__init__(**kwargs)
        self.slices = session_slices(session_sizes)
        total = sum(int(n) for n in session_sizes.values())
        for name in self.SUMS:
            self.add_state(name, default=torch.zeros(total, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, session: str, rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> None:
        sl = self.slices[session]
        m = mask.to(torch.float64)
        x = torch.where(m > 0, rates.detach().to(torch.float64), torch.zeros_like(m))
        y = torch.where(m > 0, counts.detach().to(torch.float64), torch.zeros_like(m))
        dims = tuple(range(m.ndim - 1))
        idx = torch.arange(sl.start, sl.stop, device=self.n.device)
        for name, v in zip(self.SUMS, (m, x, y, x * x, y * y, x * y)):
            setattr(self, name, getattr(self, name).index_add(0, idx, v.sum(dims)))

    def compute(self) -> torch.Tensor:
        """``(total neurons,)`` correlations."""
        n = self.n
        cov = n * self.s_xy - self.s_x * self.s_y
        var = (n * self.s_xx - self.s_x**2) * (n * self.s_yy - self.s_y**2)
        return torch.where(var > 0, cov / var.clamp(min=1e-300).sqrt(), torch.full_like(cov, float("nan")))
