"""Bits per spike against an independent float64 numpy computation of the NLB formula."""

import math

import numpy as np
import pytest
import torch

from neuroenc.metrics import BitsPerSpike, neuron_mean_clamped_bps


def numpy_bps(rates, counts, mask):
    """Per neuron: (LL_model - LL_null) / (spikes ln 2), Poisson LL over valid bins, null = mean count."""
    n_neurons = counts.shape[-1]
    r = rates.reshape(-1, n_neurons).astype(np.float64)
    y = counts.reshape(-1, n_neurons).astype(np.float64)
    m = mask.reshape(-1, n_neurons).astype(bool)
    per, diffs, spikes = [], [], []
    for i in range(n_neurons):
        yi, ri = y[m[:, i], i], r[m[:, i], i]
        lgam = np.array([math.lgamma(v + 1) for v in yi])
        ll_model = np.sum(yi * np.log(ri) - ri - lgam)
        mu = yi.mean()
        ll_null = np.sum((yi * np.log(mu) if mu > 0 else 0.0) - mu - lgam)
        diffs.append(ll_model - ll_null)
        spikes.append(yi.sum())
        per.append((ll_model - ll_null) / (yi.sum() * np.log(2)) if yi.sum() > 0 else np.nan)
    return np.array(per), np.array(diffs), np.array(spikes)


@pytest.fixture
def random_session():
    rng = np.random.default_rng(0)
    b, t, n = 6, 50, 7
    true = rng.gamma(2.0, 0.2, size=(1, 1, n)) * np.exp(rng.normal(0, 0.5, size=(b, t, n)))
    counts = rng.poisson(true).astype(np.float64)
    counts[..., 3] = 0  # a silent neuron
    rates = true * np.exp(rng.normal(0, 0.3, size=true.shape))
    mask = rng.random((b, t, n)) > 0.2
    counts[~mask] = 99  # masked bins must not count, whatever they hold
    return rates, counts, mask


def test_bps_equals_numpy_float64_formula_with_masks_and_silent_neuron(random_session):
    rates, counts, mask = random_session
    metric = BitsPerSpike({"s": counts.shape[-1]})
    metric.update("s", torch.tensor(rates), torch.tensor(counts), torch.tensor(mask))
    out = metric.compute()
    per, diffs, spikes = numpy_bps(rates, counts, mask)
    got = metric.per_neuron().numpy()
    assert np.isnan(got[3]) and np.isnan(per[3])
    np.testing.assert_allclose(got[~np.isnan(per)], per[~np.isnan(per)], rtol=1e-9)
    np.testing.assert_allclose(float(out["overall"]), diffs.sum() / (spikes.sum() * np.log(2)), rtol=1e-9)
    np.testing.assert_allclose(float(out["neuron_mean"]), np.nanmean(per), rtol=1e-9)


def test_bps_accumulated_batch_by_batch_equals_one_pass(random_session):
    rates, counts, mask = random_session
    whole = BitsPerSpike({"s": counts.shape[-1]})
    whole.update("s", torch.tensor(rates), torch.tensor(counts), torch.tensor(mask))
    parts = BitsPerSpike({"s": counts.shape[-1]})
    for i in range(rates.shape[0]):
        parts.update("s", torch.tensor(rates[i : i + 1]), torch.tensor(counts[i : i + 1]), torch.tensor(mask[i : i + 1]))
    assert float(parts.compute()["overall"]) == pytest.approx(float(whole.compute()["overall"]), rel=1e-12)


def test_bps_pools_sessions_by_summed_ll_over_summed_spikes(random_session):
    rates, counts, mask = random_session
    metric = BitsPerSpike({"a": 3, "b": 4})
    metric.update("a", torch.tensor(rates[..., :3]), torch.tensor(counts[..., :3]), torch.tensor(mask[..., :3]))
    metric.update("b", torch.tensor(rates[..., 3:]), torch.tensor(counts[..., 3:]), torch.tensor(mask[..., 3:]))
    out = metric.compute()
    _, diffs, spikes = numpy_bps(rates, counts, mask)
    ln2 = np.log(2)
    assert float(out["session/a"]) == pytest.approx(diffs[:3].sum() / (spikes[:3].sum() * ln2), rel=1e-9)
    assert float(out["session/b"]) == pytest.approx(diffs[3:].sum() / (spikes[3:].sum() * ln2), rel=1e-9)
    assert float(out["overall"]) == pytest.approx(diffs.sum() / (spikes.sum() * ln2), rel=1e-9)


def test_perfect_rates_beat_null_and_null_scores_zero():
    rng = np.random.default_rng(1)
    true = rng.gamma(2.0, 0.3, size=(20, 100, 5))
    counts = rng.poisson(true).astype(np.float64)
    mask = np.ones_like(counts, dtype=bool)
    null = np.broadcast_to(counts.reshape(-1, 5).mean(0), counts.shape)
    m_null = BitsPerSpike({"s": 5})
    m_null.update("s", torch.tensor(null.copy()), torch.tensor(counts), torch.tensor(mask))
    assert float(m_null.compute()["overall"]) == pytest.approx(0.0, abs=1e-12)
    m_true = BitsPerSpike({"s": 5})
    m_true.update("s", torch.tensor(true), torch.tensor(counts), torch.tensor(mask))
    assert float(m_true.compute()["overall"]) > 0.05


def test_neuron_mean_clamped_is_the_seeds_mean_over_sessions_of_clamped_neuron_means():
    # hand-made: session a has negative-bps neurons and a silent one; b has a different neuron count
    per_session = {"a": [0.6, -0.4, 0.2, float("nan")], "b": [-1.0, 0.9], "c": [-0.3]}
    expected = np.mean([(0.6 + 0.0 + 0.2) / 3, (0.0 + 0.9) / 2, 0.0])
    assert neuron_mean_clamped_bps(per_session) == pytest.approx(expected, abs=1e-15)
    # neither the pooled nor the plain neuron mean: clamping and session weighting both matter
    flat = [v for vs in per_session.values() for v in vs]
    assert neuron_mean_clamped_bps(per_session) != pytest.approx(np.nanmean(flat))
    assert neuron_mean_clamped_bps({"a": [0.3, 0.1], "silent": [float("nan")]}) == pytest.approx(0.2)
    assert math.isnan(neuron_mean_clamped_bps({"silent": [float("nan")]}))


def test_bits_per_spike_reports_the_seeds_clamped_figure(random_session):
    rates, counts, mask = random_session
    rates = rates.copy()
    rates[..., 5] = rates[..., 5] * 6.0  # far too high: a neuron with negative bps
    metric = BitsPerSpike({"a": 3, "b": 4})
    metric.update("a", torch.tensor(rates[..., :3]), torch.tensor(counts[..., :3]), torch.tensor(mask[..., :3]))
    metric.update("b", torch.tensor(rates[..., 3:]), torch.tensor(counts[..., 3:]), torch.tensor(mask[..., 3:]))
    per, _, _ = numpy_bps(rates, counts, mask)
    assert per[5] < 0 and np.isnan(per[3])
    a, b = per[:3], per[3:][~np.isnan(per[3:])]
    expected = (np.clip(a, 0, None).mean() + np.clip(b, 0, None).mean()) / 2
    assert float(metric.compute()["neuron_mean_clamped"]) == pytest.approx(expected, rel=1e-9)
