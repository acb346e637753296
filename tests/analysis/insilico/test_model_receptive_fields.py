"""Model receptive fields from input gradients, on the hand-built encoder whose cells read one
Gabor pair at a known pixel (units.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from units import CELL, FRAME_RATE, PEAK_LAG_FRAMES, H, W, gabor_units

from neuroenc.analysis.insilico import receptive_fields
from neuroenc.analysis.insilico.probe import Probe
from neuroenc.data.synthetic import gabor


@pytest.fixture(scope="module")
def result():
    probe = Probe(gabor_units(), "s", np.array([0, 1]), FRAME_RATE, (H, W), window=16,
                  truth=[dict(CELL, type="simple"), dict(CELL, type="complex")])
    return receptive_fields.run(probe)


def test_centre_is_the_filters_centre_for_the_simple_and_the_complex_cell(result):
    assert np.allclose(result.columns["rf_x_px"], CELL["x"], atol=0.5)
    assert np.allclose(result.columns["rf_y_px"], CELL["y"], atol=0.5)


def test_latency_is_the_temporal_kernels_peak(result):
    assert result.columns["rf_peak_lag_frames"].tolist() == [PEAK_LAG_FRAMES] * 2
    assert np.allclose(result.columns["rf_latency_ms"], PEAK_LAG_FRAMES * 1000 / FRAME_RATE)


def test_size_matches_the_gabors_sigma(result):
    assert np.allclose(result.columns["rf_size_px"], CELL["sigma"], rtol=0.2)


def test_linear_rf_of_the_simple_cell_is_its_filter(result):
    lin = result.maps.linear[0, PEAK_LAG_FRAMES]
    even = gabor(H, W, CELL["x"], CELL["y"], CELL["sigma"], CELL["theta"], CELL["wavelength"], CELL["phase"])
    assert np.corrcoef(lin.ravel(), even.ravel())[0, 1] > 0.95


def test_truth_columns_are_distance_and_ratio_to_the_true_cell(result):
    cols = receptive_fields.truth_columns({"rf_x_px": np.array([3.0]), "rf_y_px": np.array([4.0]),
                                           "rf_size_px": np.array([3.0])}, [dict(x=0.0, y=0.0, sigma=2.0)])
    assert cols["rf_center_error_px"].tolist() == [5.0]
    assert cols["rf_size_ratio"].tolist() == [1.5]
    assert result.summary["median_rf_center_error_px"] < 0.5
    assert result.summary["median_rf_size_ratio"] == pytest.approx(1.0, abs=0.2)


def test_riesz_energy_of_a_gabor_is_its_squared_envelope_whatever_its_phase():
    yy, xx = np.mgrid[0:32, 0:32].astype(float)
    envelope = np.exp(-((xx - 16) ** 2 + (yy - 15) ** 2) / (2 * 3.0**2))
    for phase in (0.0, math.pi / 2, 1.0):
        g = torch.tensor(gabor(32, 32, 16, 15, 3.0, 0.4, 6.0, phase))
        energy = receptive_fields.riesz_energy(g).numpy()
        assert np.corrcoef(energy.ravel(), (envelope**2).ravel())[0, 1] > 0.97


def test_gaussian_fit_recovers_centre_and_width():
    yy, xx = np.mgrid[0:20, 0:30].astype(float)
    image = 2.0 * np.exp(-((xx - 12.3) ** 2 + (yy - 7.6) ** 2) / (2 * 1.7**2)) + 0.1
    assert receptive_fields.fit_gaussian(image) == pytest.approx((12.3, 7.6, 1.7), abs=1e-3)


def test_neurons_share_a_backward_pass_only_when_their_input_patches_do_not_overlap():
    centres = np.array([[5.0, 5.0], [40.0, 5.0], [8.0, 12.0], [60.0, 30.0], [30.0, 30.0]])
    boxes = receptive_fields.support_boxes(centres, np.array([6.0, 6.0, 6.0, 6.0]), (36, 64))
    assert boxes[0].tolist() == [0, 12, 0, 12]  # clipped at the frame's edge, end-exclusive
    groups = receptive_fields.disjoint_groups(boxes)
    assert sorted(i for g in groups for i in g) == list(range(5))
    for group in groups:
        for a in group:
            for b in group:
                if a != b:
                    (ax0, ax1, ay0, ay1), (bx0, bx1, by0, by1) = boxes[a], boxes[b]
                    assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0
    assert len(groups) == 2  # 0 and 2 overlap; the rest fit beside one of them
