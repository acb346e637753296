"""Repeat-based scores (correlation to average, FEV, oracle correlation) against an independent
per-neuron computation written the way neuralpredictors writes them, and against the true rates
of simulated repeats."""

import numpy as np
import pytest

from neuroenc.metrics import repeat_scores


def reference(responses, predictions, neuron):
    """neuralpredictors' fev / oracle / correlation-to-average for one neuron, every frame of a video
    an image: lists of per-image arrays, np.var(ddof=1), np.corrcoef."""
    targets, preds = [], []
    for y, p in zip(responses, predictions):
        if y.shape[0] < 2:
            continue
        for f in range(y.shape[1]):
            t, q = y[:, f, neuron], p[:, f, neuron]
            if np.isfinite(t).all() and np.isfinite(q).all():
                targets.append(t)
                preds.append(q)
    img_var = [np.var(t, ddof=1) for t in targets]
    total_var = np.var(np.concatenate(targets), ddof=1)
    noise_var = np.mean(img_var)
    pred_var = np.mean(np.concatenate([(t - q) ** 2 for t, q in zip(targets, preds)]))
    fev_e = 1 - (pred_var - noise_var) / (total_var - noise_var)
    loo = [(t.sum() - t) / (len(t) - 1) for t in targets]
    oracle = np.corrcoef(np.concatenate(targets), np.concatenate(loo))[0, 1]
    to_avg = np.corrcoef([t.mean() for t in targets], [q.mean() for q in preds])[0, 1]
    return {"fev": fev_e, "oracle_corr": oracle, "corr_to_average": to_avg,
            "explainable_var_fraction": (total_var - noise_var) / total_var}


def test_repeat_scores_equal_the_per_neuron_neuralpredictors_formulas_with_masks_and_unequal_repeats():
    rng = np.random.default_rng(0)
    n = 5
    responses, predictions = [], []
    for repeats, frames in ((4, 30), (2, 25), (7, 20), (1, 10)):  # the single-repeat video is left out
        signal = rng.gamma(2.0, 0.5, size=(1, frames, n))
        y = rng.poisson(np.broadcast_to(signal, (repeats, frames, n))).astype(float)
        p = signal * rng.uniform(0.5, 1.5, size=(repeats, frames, n))
        y[rng.random(y.shape) < 0.05] = np.nan  # invalid bins: their frame drops out for that neuron
        p[:, :3] = np.nan  # burn-in
        responses.append(y)
        predictions.append(p)
    got = repeat_scores(responses, predictions)
    for j in range(n):
        want = reference(responses, predictions, j)
        for key, value in want.items():
            assert got[key][j] == pytest.approx(value, rel=1e-10, abs=1e-12), (key, j)


def test_data_only_scores_without_predictions_and_nan_for_a_constant_neuron():
    rng = np.random.default_rng(1)
    y = rng.poisson(2.0, size=(3, 40, 2)).astype(float)
    y[..., 1] = 0.0
    got = repeat_scores([y])
    assert set(got) == {"oracle_corr", "explainable_var_fraction"}
    assert np.isfinite(got["oracle_corr"][0]) and np.isnan(got["oracle_corr"][1])


def test_prediction_equal_to_the_mean_true_rate_explains_all_explainable_variance():
    """Spikes Poisson around rates that vary from repeat to repeat (behaviour): the mean true rate
    over repeats has FEV near 1 and correlates with the average response as the oracle allows;
    a prediction of the response's own average is over-fitted and scores above 1."""
    rng = np.random.default_rng(2)
    videos, frames, repeats, n = 6, 300, 10, 4
    responses, mean_rates, rates_all = [], [], []
    for _ in range(videos):
        drive = np.exp(rng.normal(0, 0.8, size=(1, frames, n)))
        gain = np.exp(rng.normal(0, 0.2, size=(repeats, 1, n)))
        rates = 0.5 * drive * gain
        responses.append(rng.poisson(rates).astype(float))
        mean_rates.append(np.broadcast_to(rates.mean(0, keepdims=True), rates.shape))
        rates_all.append(rates)
    got = repeat_scores(responses, mean_rates)
    assert np.all(np.abs(got["fev"] - 1) < 0.1), got["fev"]
    # the explainable variance the data estimate equals the variance over frames of the mean rate
    signal = np.var(np.concatenate([m[0] for m in mean_rates]), axis=0, ddof=1)
    total = np.var(np.concatenate([y.reshape(-1, n) for y in responses]), axis=0, ddof=1)
    np.testing.assert_allclose(got["explainable_var_fraction"], signal / total, rtol=0.1)
    assert np.all(got["corr_to_average"] > got["oracle_corr"])  # averaging removes the noise the oracle keeps
    noisy = repeat_scores(responses, [m * rng.uniform(0.3, 1.7, size=m.shape) for m in mean_rates])
    assert np.all(noisy["fev"] < got["fev"])
