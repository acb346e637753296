"""Bits per spike and the Poisson loss against independent float64 numpy computations."""

import math

import numpy as np
import pytest
import torch

from neuroenc.metrics import (
    BitsPerSpike,
    BitsPerSpikeResult,
    end_to_end,
    neuron_mean_clamped_bps,
    poisson_loss,
)


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
    out = metric.result()
    per, diffs, spikes = numpy_bps(rates, counts, mask)
    got = out.per_neuron["s"]
    assert np.isnan(got[3]) and np.isnan(per[3])
    np.testing.assert_allclose(got[~np.isnan(per)], per[~np.isnan(per)], rtol=1e-9)
    np.testing.assert_allclose(out.overall, diffs.sum() / (spikes.sum() * np.log(2)), rtol=1e-9)
    np.testing.assert_allclose(out.neuron_mean, np.nanmean(per), rtol=1e-9)


def test_bps_accumulated_batch_by_batch_equals_one_pass(random_session):
    rates, counts, mask = random_session
    whole = BitsPerSpike({"s": counts.shape[-1]})
    whole.update("s", torch.tensor(rates), torch.tensor(counts), torch.tensor(mask))
    parts = BitsPerSpike({"s": counts.shape[-1]})
    for i in range(rates.shape[0]):
        parts.update("s", torch.tensor(rates[i : i + 1]), torch.tensor(counts[i : i + 1]), torch.tensor(mask[i : i + 1]))
    assert parts.result().overall == pytest.approx(whole.result().overall, rel=1e-12)


def test_bps_pools_sessions_by_summed_ll_over_summed_spikes(random_session):
    rates, counts, mask = random_session
    metric = BitsPerSpike({"a": 3, "b": 4})
    metric.update("a", torch.tensor(rates[..., :3]), torch.tensor(counts[..., :3]), torch.tensor(mask[..., :3]))
    metric.update("b", torch.tensor(rates[..., 3:]), torch.tensor(counts[..., 3:]), torch.tensor(mask[..., 3:]))
    out = metric.result()
    _, diffs, spikes = numpy_bps(rates, counts, mask)
    ln2 = np.log(2)
    assert out.per_session["a"] == pytest.approx(diffs[:3].sum() / (spikes[:3].sum() * ln2), rel=1e-9)
    assert out.per_session["b"] == pytest.approx(diffs[3:].sum() / (spikes[3:].sum() * ln2), rel=1e-9)
    assert out.overall == pytest.approx(diffs.sum() / (spikes.sum() * ln2), rel=1e-9)


def test_perfect_rates_beat_null_and_null_scores_zero():
    rng = np.random.default_rng(1)
    true = rng.gamma(2.0, 0.3, size=(20, 100, 5))
    counts = rng.poisson(true).astype(np.float64)
    mask = np.ones_like(counts, dtype=bool)
    null = np.broadcast_to(counts.reshape(-1, 5).mean(0), counts.shape)
    m_null = BitsPerSpike({"s": 5})
    m_null.update("s", torch.tensor(null.copy()), torch.tensor(counts), torch.tensor(mask))
    assert m_null.result().overall == pytest.approx(0.0, abs=1e-12)
    m_true = BitsPerSpike({"s": 5})
    m_true.update("s", torch.tensor(true), torch.tensor(counts), torch.tensor(mask))
    assert m_true.result().overall > 0.05


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
    assert metric.result().neuron_mean_clamped == pytest.approx(expected, rel=1e-9)


def test_every_field_of_the_result_agrees_with_the_numpy_formula(random_session):
    rates, counts, mask = random_session
    rates = rates.copy()
    rates[..., 5] *= 6.0  # a neuron below its mean-rate model, so clamping matters
    metric = BitsPerSpike({"a": 3, "b": 4})
    metric.update("a", torch.tensor(rates[..., :3]), torch.tensor(counts[..., :3]), torch.tensor(mask[..., :3]))
    metric.update("b", torch.tensor(rates[..., 3:]), torch.tensor(counts[..., 3:]), torch.tensor(mask[..., 3:]))
    out = metric.result()
    assert isinstance(out, BitsPerSpikeResult)
    per, diffs, spikes = numpy_bps(rates, counts, mask)
    ln2 = np.log(2)
    assert list(out.per_session) == list(out.per_neuron) == list(out.spikes) == ["a", "b"]
    assert [v.shape for v in out.per_neuron.values()] == [(3,), (4,)]
    np.testing.assert_allclose(end_to_end(out.per_neuron), per, rtol=1e-9)  # NaN (silent neuron 3) in both
    np.testing.assert_array_equal(end_to_end(out.spikes), spikes)
    np.testing.assert_array_equal(end_to_end(out.spikes), np.where(mask, counts, 0).sum((0, 1)))
    assert out.overall == pytest.approx(diffs.sum() / (spikes.sum() * ln2), rel=1e-9)
    assert out.neuron_mean == pytest.approx(np.nanmean(per), rel=1e-9)
    for s, sl in (("a", slice(0, 3)), ("b", slice(3, 7))):
        assert out.per_session[s] == pytest.approx(diffs[sl].sum() / (spikes[sl].sum() * ln2), rel=1e-9)
    clamped = [np.clip(v[~np.isnan(v)], 0, None).mean() for v in (per[:3], per[3:])]
    assert out.neuron_mean_clamped == pytest.approx(np.mean(clamped), rel=1e-9)
    with pytest.raises(AttributeError):  # frozen: callbacks cannot change what others read
        out.overall = 0.0


def test_poisson_loss_is_the_masked_mean_nll_and_the_metrics_model_likelihood(random_session):
    rates, counts, mask = random_session
    r, y = torch.tensor(rates, dtype=torch.float32), torch.tensor(counts, dtype=torch.float32)
    loss = poisson_loss(r, y, torch.tensor(mask))
    rd, yd = rates.astype(np.float64), counts.astype(np.float64)
    nll = rd - yd * np.log(np.maximum(rd, 1e-8))
    assert float(loss) == pytest.approx(nll[mask].mean(), rel=1e-5)
    # the metric's model log-likelihood (without log y!) is minus the summed per-bin NLL
    metric = BitsPerSpike({"s": counts.shape[-1]})
    metric.update("s", torch.tensor(rd), torch.tensor(counts), torch.tensor(mask))
    s_ylogr, s_r, _, _ = metric.compute()
    np.testing.assert_allclose((s_r - s_ylogr).numpy(), np.where(mask, nll, 0).sum((0, 1)), rtol=1e-12)
    assert float(poisson_loss(r, y, torch.zeros_like(r, dtype=torch.bool))) == 0.0  # nothing to score


def test_logged_keys_are_built_in_one_place_and_parsed_back_by_its_inverse(random_session):
    from neuroenc.training.module import ValidationScores, per_session_scores, session_key

    rates, counts, mask = random_session
    metric = BitsPerSpike({"a": 3, "b.2": 4})
    metric.update("a", torch.tensor(rates[..., :3]), torch.tensor(counts[..., :3]), torch.tensor(mask[..., :3]))
    metric.update("b.2", torch.tensor(rates[..., 3:]), torch.tensor(counts[..., 3:]), torch.tensor(mask[..., 3:]))
    bps = metric.result()
    scores = ValidationScores(step=7, bps=bps, oracle=0.5, rf_distance_px_median=1.5)
    logged = scores.logged()
    # the names W&B dashboards and metrics.json rely on, in this order
    assert list(logged) == ["val_bps_overall", "val_bps_neuron_mean", "val_bps_neuron_mean_clamped", "val_bps/a",
                            "val_bps/b.2", "val_bps_oracle", "val_oracle_fraction", "rf_distance_px_median"]
    assert session_key("b.2") == "val_bps/b.2"
    assert per_session_scores(logged) == bps.per_session
    assert logged["val_oracle_fraction"] == bps.overall / 0.5
    assert list(ValidationScores(step=0, bps=bps).logged())[-1] == "val_bps/b.2"  # no oracle, no RF truth
