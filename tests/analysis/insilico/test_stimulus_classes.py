"""Scores per stimulus class are the project's scores of each class's trials."""

import numpy as np
import pytest
import torch
from units import FRAME_RATE, H, W, gabor_units

from neuroenc.analysis.insilico.probe import Probe, Skipped
from neuroenc.analysis.insilico.stimulus_classes import run
from neuroenc.config.records import SimulationParams
from neuroenc.data.sessions import open_session, write_session
from neuroenc.data.synthetic import simulate_session
from neuroenc.metrics import BitsPerSpike, Correlation

TRIAL = 60


def two_class_session(tmp_path, labelled: bool = True):
    """Simulated gratings and pink noise on :func:`gabor_units`' frame: session ``"s"``, the
    simulator's first two neurons, the eye columns of its behaviour."""
    p = SimulationParams(num_sessions=1, neurons_min=2, neurons_max=2, trials_train=2, trials_val=3, trials_test=3,
                         trial_frames=TRIAL, height=H, width=W, frame_rate=FRAME_RATE, stimuli=["gratings", "pink_noise"])
    d = simulate_session(p, 0)
    path = write_session(tmp_path / "s", session_id="s", stim=d["stim"], robs=d["robs"], dfs=d["dfs"], rates=d["rates"],
                         trial=d["trial"], splits=d["splits"], frame_rate=FRAME_RATE, behavior=d["behavior"][:, :2],
                         behavior_names=["eye_x", "eye_y"],
                         extra_meta={"trial_class": d["extra_meta"]["trial_class"]} if labelled else None)
    return open_session(path)


def probe_of(session) -> Probe:
    return Probe(model=gabor_units(), session_id="s", neurons=np.arange(2), frame_rate=FRAME_RATE, frame_shape=(H, W),
                 window=16, session=session)


def test_per_class_scores_are_the_metrics_of_each_class_on_its_own(tmp_path):
    s = two_class_session(tmp_path)
    result = run(probe_of(s))
    labels = {int(t): c for t, c in s.meta["trial_class"].items()}
    scored = sorted(s.meta["splits"]["val"] + s.meta["splits"]["test"])
    assert set(result.summary["classes"]) == {"gratings", "pink_noise"}
    for label in ("gratings", "pink_noise"):
        trials = [t for t in scored if labels[t] == label]
        assert result.summary["classes"][label]["trials"] == len(trials) > 0
        # the class's trials as one batch, scored once
        frames = np.concatenate([np.flatnonzero(s.trial[:] == t) for t in trials])
        rates = gabor_units().predict(s.stim[frames].reshape(len(trials), TRIAL, H, W),
                                      s.behavior[frames].reshape(len(trials), TRIAL, 2), "s",
                                      normalization=s.stats()).reshape(-1, 2)
        mask = torch.from_numpy(s.valid(0, s.n_frames)[frames] & np.isfinite(rates))[None]
        rates_t, counts = torch.from_numpy(rates)[None], torch.from_numpy(np.asarray(s.robs[frames]))[None]
        bps, corr, truth = BitsPerSpike({"s": 2}), Correlation({"s": 2}), BitsPerSpike({"s": 2})
        bps.update("s", rates_t, counts, mask)
        corr.update("s", rates_t, counts, mask)
        truth.update("s", torch.from_numpy(np.asarray(s.rates[frames]))[None], counts, mask)
        np.testing.assert_allclose(result.columns[f"bps_{label}"], bps.result().per_neuron["s"], rtol=1e-9)
        np.testing.assert_allclose(result.columns[f"corr_{label}"], corr.compute().numpy(), rtol=1e-9)
        assert result.summary["classes"][label]["bps_pooled"] == pytest.approx(bps.result().overall, rel=1e-9)
        assert result.summary["classes"][label]["bps_pooled_truth"] == pytest.approx(truth.result().overall, rel=1e-9)
    result.plot(tmp_path / "classes.png")
    assert (tmp_path / "classes.png").stat().st_size > 0


def test_sessions_without_labels_skip(tmp_path):
    with pytest.raises(Skipped, match="no per-trial stimulus labels in meta.json: no per-class scores"):
        run(probe_of(two_class_session(tmp_path, labelled=False)))
