"""The Poisson loss, bits per spike, and the repeat-based scores (at the end): the one definition
of each used everywhere in neuroenc.

For neuron i over all valid bins of a split (the Neural Latents Benchmark's ``bits_per_spike``)::

    bps_i = (LL_model_i - LL_null_i) / (spikes_i * ln 2)

with Poisson log-likelihoods and a null model that predicts the neuron's mean count over the
same valid bins. The ``log(y!)`` terms cancel in the difference, so only four running sums per
neuron are needed, which makes the value exact when accumulated batch by batch or across DDP
ranks (the sums are float64 and reduced by summation):

    S_ylogr = sum y * log r,  S_r = sum r,  S_y = sum y,  n = number of valid bins
    LL_model - LL_null = S_ylogr - S_r - S_y * log(S_y / n) + S_y

Pooled scores (per session, overall) divide the summed LL differences by the summed spikes.
A silent neuron (S_y == 0) has an undefined per-neuron bps (NaN, left out of the neuron means)
but its LL difference (-S_r: the null predicts exactly zero) still counts in pooled scores.
Nothing is clamped, except in the seed's figure (:func:`neuron_mean_clamped_bps`), which is
reported beside the pooled score so numbers can be compared with the seed's, never instead of it.

``S_ylogr - S_r`` is minus the summed :func:`poisson_nll`, the per-bin term of the training loss;
the metric keeps the two sums apart as it always has (one sum of ``r - y log r`` would round
differently in the last bits), with the same :func:`log_rate` inside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric

LN2 = math.log(2.0)
# Floors of r inside log r: the loss's 1e-8 is training's reference, bits per spike has always
# used 1e-12. They disagree only on a valid bin with a spike predicted below 1e-8, but there one
# floor for both would move a reported score, so they stay apart.
LOSS_EPS = 1e-8
METRIC_EPS = 1e-12


def log_rate(rates: torch.Tensor, eps: float) -> torch.Tensor:
    """``log(max(r, eps))``: the one guard against log(0) in every Poisson likelihood here (a
    correct model never predicts exactly zero)."""
    return torch.log(rates.clamp(min=eps))


def poisson_nll(rates: torch.Tensor, counts: torch.Tensor, eps: float = LOSS_EPS) -> torch.Tensor:
    """Per-bin Poisson negative log-likelihood without ``log y!``: ``r - y log r``.

    Not ``F.poisson_nll_loss(log_input=False)``: it takes ``log(r + eps)``, which is not bitwise
    ``log(max(r, eps))`` (on random rates a few percent of the bins differ), and training's numbers
    must not change."""
    return rates - counts * log_rate(rates, eps)


def poisson_loss(rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The training loss: mean :func:`poisson_nll` over the masked bins of ``(B, T, N)``."""
    m = mask.to(rates.dtype)
    return (poisson_nll(rates, counts) * m).sum() / m.sum().clamp(min=1)


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


def neuron_mean_clamped_bps(per_session: Mapping[str, Sequence[float]]) -> float:
    """The seed's figure: per session the mean over neurons of max(bps_i, 0), then the mean over
    sessions (``val_bps_neuron_mean_clamped``).

    ``per_session`` maps session id -> that session's per-neuron bits per spike. Clamping hides
    how badly a neuron is predicted below its mean rate, and averaging sessions weighs a neuron of
    a small session more, so this is not the pooled score; the seed reports its numbers this way.
    Silent neurons (NaN) are left out as in ``neuron_mean``, and so is a session with none
    defined; NaN when no session has a defined neuron.
    """
    means = []
    for bps in per_session.values():
        b = np.asarray(bps, dtype=np.float64)
        b = b[~np.isnan(b)]
        if b.size:
            means.append(np.maximum(b, 0.0).mean())
    return float(np.mean(means)) if means else math.nan


def session_slices(session_sizes: dict[str, int]) -> dict[str, slice]:
    """Sessions laid end to end: neuron j of session s sits at ``slices[s].start + j``."""
    out, start = {}, 0
    for s, n in session_sizes.items():
        out[s] = slice(start, start + int(n))
        start += int(n)
    return out


def end_to_end(per_session: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-session arrays laid end to end, as :func:`session_slices` places them: ``(N_total,)``."""
    return np.concatenate(list(per_session.values()))


@dataclass(frozen=True)
class BitsPerSpikeResult:
    """Bits per spike of one split: what :meth:`BitsPerSpike.result` returns.

    Sessions in the order the metric was given them; every per-neuron array is ``(N_session,)``
    float64.
    """

    overall: float  # pooled over all neurons: summed LL differences / summed spikes
    neuron_mean: float  # mean over the neurons that spiked
    neuron_mean_clamped: float  # the seed's figure (:func:`neuron_mean_clamped_bps`)
    per_session: dict[str, float]  # pooled within each session
    per_neuron: dict[str, np.ndarray]  # each neuron's bps, NaN where it never spiked
    spikes: dict[str, np.ndarray]  # each neuron's spike count over the scored bins

    @classmethod
    def from_sums(cls, s_ylogr, s_r, s_y, n, slices: dict[str, slice]) -> BitsPerSpikeResult:
        """The scores of the four per-neuron sums (module docstring), sessions at ``slices``."""
        sums = (s_ylogr, s_r, s_y, n)
        per_neuron = bits_per_spike_from_sums(*sums)
        by_session = {s: per_neuron[sl].cpu().numpy() for s, sl in slices.items()}
        spikes = s_y.cpu().numpy()
        return cls(overall=float(pooled_bits_per_spike(*sums)),
                   neuron_mean=float(torch.nanmean(per_neuron)),
                   neuron_mean_clamped=neuron_mean_clamped_bps(by_session),
                   per_session={s: float(pooled_bits_per_spike(*(x[sl] for x in sums))) for s, sl in slices.items()},
                   per_neuron=by_session,
                   spikes={s: spikes[sl] for s, sl in slices.items()})


class SessionSums(Metric):
    """Per-neuron float64 sums over the scored bins of a split, for sessions laid end to end:
    neuron j of session s sits at ``slices[s].start + j`` in every state vector.

    Sums make a score exact when accumulated batch by batch or across DDP ranks (reduced by
    summation). A subclass names its sums in ``SUMS`` and gives :meth:`terms`, the per-bin values
    summed into them. ``update`` takes rates and counts of shape ``(B, T, N)`` and a boolean/0-1
    mask of the same shape (valid and scored bins); masked bins may hold anything (NaN counts
    included).
    """

    full_state_update = False
    higher_is_better = True
    SUMS: tuple[str, ...] = ()

    def __init__(self, session_sizes: dict[str, int], **kwargs):
        super().__init__(**kwargs)
        self.slices = session_slices(session_sizes)
        total = sum(int(n) for n in session_sizes.values())
        for name in self.SUMS:
            self.add_state(name, default=torch.zeros(total, dtype=torch.float64), dist_reduce_fx="sum")

    def terms(self, rates: torch.Tensor, counts: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-bin values, one per name in ``SUMS``, of float64 ``rates``, ``counts`` and mask ``m``."""
        raise NotImplementedError

    def update(self, session: str, rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> None:
        sl = self.slices[session]
        m = mask.to(torch.float64)
        values = self.terms(rates.detach().to(torch.float64), counts.detach().to(torch.float64), m)
        dims = tuple(range(m.ndim - 1))
        idx = torch.arange(sl.start, sl.stop, device=getattr(self, self.SUMS[0]).device)
        # out-of-place: states may have been created under inference mode by an earlier validate()
        for name, v in zip(self.SUMS, values):
            setattr(self, name, getattr(self, name).index_add(0, idx, v.sum(dims)))


class BitsPerSpike(SessionSums):
    """Bits per spike (module docstring) from four per-neuron sums; :meth:`result` gives the scores."""

    SUMS = ("s_ylogr", "s_r", "s_y", "n")

    def terms(self, rates, counts, m):
        # masked bins: no spikes and rate 1, so neither term sees what they hold
        y = torch.where(m > 0, counts, torch.zeros_like(counts))
        r = torch.where(m > 0, rates, torch.ones_like(rates))
        return y * log_rate(r, METRIC_EPS) * m, r * m, y * m, m

    def compute(self) -> torch.Tensor:
        """``(4, total neurons)``: the sums of ``SUMS`` over every batch and rank (torchmetrics syncs
        them here). A frozen result cannot come out of ``compute``, which rewrites its output."""
        return torch.stack([getattr(self, name) for name in self.SUMS])

    def result(self) -> BitsPerSpikeResult:
        """The scores of everything accumulated since the last ``reset`` (over all ranks)."""
        return BitsPerSpikeResult.from_sums(*self.compute(), slices=self.slices)


class Correlation(SessionSums):
    """Per-neuron Pearson correlation of predicted rate and count over the valid scored bins of a
    split (sessions and ``update`` as in :class:`SessionSums`).

    Accumulated as float64 sums (x = rate, y = count): n, S_x, S_y, S_xx, S_yy, S_xy, so the
    value is exact batch by batch and across DDP ranks. NaN where a neuron's count or predicted
    rate does not vary over the split.
    """

    SUMS = ("n", "s_x", "s_y", "s_xx", "s_yy", "s_xy")

    def terms(self, rates, counts, m):
        x = torch.where(m > 0, rates, torch.zeros_like(m))
        y = torch.where(m > 0, counts, torch.zeros_like(m))
        return m, x, y, x * x, y * y, x * y

    def compute(self) -> torch.Tensor:
        """``(total neurons,)`` correlations."""
        n = self.n
        cov = n * self.s_xy - self.s_x * self.s_y
        var = (n * self.s_xx - self.s_x**2) * (n * self.s_yy - self.s_y**2)
        return torch.where(var > 0, cov / var.clamp(min=1e-300).sqrt(), torch.full_like(cov, float("nan")))


# ------------------------------------------------------------------------------ repeat-based metrics
#
# Where a split shows one video in several trials (Sensorium's oracle tier), the field reads three
# figures per neuron (neuralpredictors.measures, the Sensorium 2022/2023 scoring). A video's frame
# plays the part of neuralpredictors' "image": every frame of a repeated video is one stimulus
# condition, seen once per repeat. Over the repeated trials of a split, for neuron i:
#
#   correlation to average   Pearson correlation over frames of the response averaged over repeats
#                            and the prediction averaged over repeats
#   FEV (FEVe)               1 - (MSE - noise_var) / (total_var - noise_var): the fraction of the
#                            explainable variance explained, where total_var is the variance of the
#                            responses over all (repeat, frame) samples (ddof=1), noise_var the mean
#                            over frames of the variance over repeats (ddof=1) and MSE the mean
#                            squared error of the prediction over all samples
#   oracle correlation       Pearson correlation of each trial's response with the mean of the
#                            other repeats (leave one out), over all samples: a ceiling from the
#                            data alone
#
# plus the explainable variance fraction (total_var - noise_var) / total_var of the data. A frame
# counts for a neuron only where every repeat's response (and prediction) is finite, so masked
# bins and burn-in frames (NaN) leave it out; videos with fewer than two repeats have no noise
# estimate and are left out. Sums are float64 and per video, so memory stays at one video's arrays.

REPEAT_SCORES = ("corr_to_average", "fev", "oracle_corr", "explainable_var_fraction")


def _pearson(n, sx, sy, sxx, syy, sxy) -> np.ndarray:
    cov = n * sxy - sx * sy
    var = (n * sxx - sx**2) * (n * syy - sy**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)


def repeat_scores(responses: list[np.ndarray], predictions: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-neuron repeat-based scores (see above) of videos shown several times.

    ``responses``: one array ``(R_v, F_v, N)`` per video (its R_v repeats of F_v frames), NaN
    where a bin is not valid; ``predictions``: the model's rates in the same layout (NaN where
    there are none, e.g. burn-in), or None for the data-only figures. Returns ``(N,)`` float64
    arrays: ``oracle_corr``, ``explainable_var_fraction`` and, with predictions,
    ``corr_to_average`` and ``fev``; NaN where a neuron has no usable frame or no variance.
    """
    if not responses:
        raise ValueError("repeat_scores: no repeated videos")
    n = responses[0].shape[-1]
    z = lambda: np.zeros(n)
    tot = dict(n=z(), s=z(), ss=z())  # all samples
    noise = dict(frames=z(), var=z())  # per frame variance over repeats
    oracle = dict(n=z(), sx=z(), sy=z(), sxx=z(), syy=z(), sxy=z())  # response vs leave-one-out mean
    avg = dict(n=z(), sx=z(), sy=z(), sxx=z(), syy=z(), sxy=z())  # mean response vs mean prediction
    sq_err = z()
    for v, y in enumerate(responses):
        y = np.asarray(y, np.float64)
        if y.ndim != 3 or y.shape[-1] != n:
            raise ValueError(f"repeat_scores: responses[{v}] has shape {y.shape}, expected (repeats, frames, {n})")
        r = y.shape[0]
        if r < 2:
            continue
        ok = np.isfinite(y).all(0)  # (F, N)
        p = None
        if predictions is not None:
            p = np.asarray(predictions[v], np.float64)
            if p.shape != y.shape:
                raise ValueError(f"repeat_scores: predictions[{v}] has shape {p.shape}, responses {y.shape}")
            ok &= np.isfinite(p).all(0)
            p = np.where(ok, p, 0.0)
        y = np.where(ok, y, 0.0)
        w = ok.astype(np.float64)
        total = y.sum(0)  # (F, N)
        tot["n"] += r * w.sum(0)
        tot["s"] += total.sum(0)
        tot["ss"] += (y * y).sum((0, 1))
        noise["frames"] += w.sum(0)
        noise["var"] += ((y * y).sum(0) - total**2 / r).sum(0) / (r - 1)
        loo = (total - y) / (r - 1)
        for k, val in zip(("n", "sx", "sy", "sxx", "syy", "sxy"), (r * w, y, loo, y * y, loo * loo, y * loo)):
            oracle[k] += val.sum(0) if k == "n" else val.sum((0, 1))
        if p is not None:
            sq_err += ((y - p) ** 2).sum((0, 1))
            ym, pm = total / r, p.sum(0) / r
            for k, val in zip(("n", "sx", "sy", "sxx", "syy", "sxy"), (w, ym, pm, ym * ym, pm * pm, ym * pm)):
                avg[k] += val.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total_var = (tot["ss"] - tot["s"] ** 2 / tot["n"]) / (tot["n"] - 1)
        noise_var = noise["var"] / noise["frames"]
        out = {"oracle_corr": _pearson(*oracle.values()),
               "explainable_var_fraction": np.where(total_var > 0, (total_var - noise_var) / total_var, np.nan)}
        if predictions is not None:
            mse = sq_err / tot["n"]
            explainable = total_var - noise_var
            out["fev"] = np.where(explainable != 0, 1 - (mse - noise_var) / explainable, np.nan)
            out["corr_to_average"] = _pearson(*avg.values())
    return {k: np.where(tot["n"] > 1, v, np.nan) for k, v in out.items()}
