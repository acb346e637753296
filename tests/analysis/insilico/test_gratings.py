"""Drifting-grating tuning on the hand-built encoder whose simple and complex cell read one
Gabor pair of known orientation and wavelength (units.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from units import CELL, FRAME_RATE, H, W, gabor_units

from neuroenc.analysis.insilico import gratings
from neuroenc.analysis.insilico.probe import Probe

ORIENTATIONS = 12  # a 15 degree grid
SFS = 8


@pytest.fixture(scope="module")
def result():
    probe = Probe(gabor_units(), "s", np.array([0, 1]), FRAME_RATE, (H, W), window=16,
                  truth=[dict(CELL, type="simple"), dict(CELL, type="complex")])
    return gratings.run(probe, orientations=ORIENTATIONS, sfs=SFS)


def test_preferred_orientation_is_the_filters_for_the_simple_cell(result):
    error = gratings.orientation_difference_deg(result.columns["preferred_orientation_deg"][0],
                                                math.degrees(CELL["theta"]))
    assert error < 180 / ORIENTATIONS


def test_preferred_orientation_is_the_filters_for_the_complex_energy_cell(result):
    error = gratings.orientation_difference_deg(result.columns["preferred_orientation_deg"][1],
                                                math.degrees(CELL["theta"]))
    assert error < 180 / ORIENTATIONS


def test_preferred_sf_is_one_over_the_wavelength_within_a_grid_step(result):
    step = math.log2(0.5 / (2 / max(H, W))) / (SFS - 1)
    ratio = result.columns["preferred_sf_cpp"] * CELL["wavelength"]
    assert np.all(np.abs(np.log2(ratio)) < step)


def test_f1_f0_tells_the_simple_cell_from_the_complex_cell(result):
    f1_f0 = result.columns["f1_f0"]
    assert f1_f0[0] > 1 > f1_f0[1]
    assert result.columns["type_predicted"].tolist() == ["simple", "complex"]
    assert result.summary["type_accuracy"] == 1.0


def test_orientation_error_wraps_at_180_degrees():
    assert gratings.orientation_difference_deg(170.0, 10.0) == pytest.approx(20.0)
    assert gratings.orientation_difference_deg([5.0, 90.0], [175.0, 0.0]).tolist() == pytest.approx([10.0, 90.0])


def test_truth_columns_on_known_answers():
    columns = {"preferred_orientation_deg": np.array([170.0, 45.0]), "preferred_sf_cpp": np.array([0.25, 0.05]),
               "f1_f0": np.array([1.5, 0.5])}
    truth = [dict(theta=math.radians(10.0), wavelength=8.0, type="simple"),
             dict(theta=math.radians(225.0), wavelength=10.0, type="simple")]
    cols = gratings.truth_columns(columns, truth, FRAME_RATE)
    assert cols["orientation_error_deg"] == pytest.approx([20.0, 0.0])
    assert cols["true_theta_deg"] == pytest.approx([10.0, 45.0])
    assert cols["sf_ratio"] == pytest.approx([2.0, 0.5])
    assert cols["log2_sf_ratio"] == pytest.approx([1.0, -1.0])
    assert cols["type_predicted"].tolist() == ["simple", "complex"]
    assert cols["type_correct"].tolist() == [True, False]


def test_grating_has_the_training_contrast_and_drifts_along_its_wave_vector():
    movie = gratings.grating_movie(np.array([0.0]), np.array([0.125]), np.array([3.75]), 8, (16, 16), 30.0)[0]
    assert float(movie.std()) == pytest.approx(1.0, abs=0.02)
    # one frame later (1/8 cycle at 3.75 Hz and 30 Hz) the pattern sits 1 px further along +x
    assert np.allclose(movie[1, :, 1:].numpy(), movie[0, :, :-1].numpy(), atol=1e-5)


def test_parabolic_peak_finds_the_vertex_between_grid_points():
    axis = np.arange(5, dtype=float)
    values = -((axis - 2.3) ** 2)[:, None]
    assert gratings.parabolic_peak(values, axis) == pytest.approx([2.3])
