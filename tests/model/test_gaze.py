"""The per-frame gaze correction (``gaze=per_frame``): each stimulus frame moved by its own eye position."""

import math

import numpy as np
import pytest
import torch
from conftest import MICRO, compose_config
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

import neuroenc
from neuroenc.config.validate import ConfigError
from neuroenc.model.gaze import FrameGazeCorrection
from neuroenc.training.build import build_encoder_without_data
from neuroenc.training.module import EncoderModule

NAMES = ["eye_x", "eye_y", "running"]
COLUMNS = ["eye_x", "eye_y"]


def standardised(behavior: np.ndarray, norm: dict) -> torch.Tensor:
    """The behaviour as the datamodule hands it to the model: z-scored with the session's statistics."""
    return torch.from_numpy(((behavior - np.asarray(norm["behavior_mean"])) / np.asarray(norm["behavior_std"]))
                            .astype(np.float32))


def retina_of(screen: np.ndarray, eye: np.ndarray, m: int) -> np.ndarray:
    """The simulator's way: retinal pixel (x, y) shows the screen at (x + dx, y + dy), 0 beyond its
    edge; ``screen (T, H, W)``, ``eye (T, 2)`` whole pixels within +-``m``."""
    t, h, w = screen.shape
    padded = np.pad(screen, ((0, 0), (m, m), (m, m)))
    return np.stack([padded[i, m + dy : m + dy + h, m + dx : m + dx + w] for i, (dx, dy) in enumerate(eye)])


def test_the_corrected_stimulus_is_the_retinal_one_for_known_per_frame_shifts():
    rng = np.random.default_rng(0)
    t, h, w, m = 30, 10, 14, 3
    screen = rng.standard_normal((t, h, w)).astype(np.float32)
    eye = rng.integers(-m, m + 1, (t, 2))
    # the eye columns in data units of half a pixel, standardised as the datamodule does
    norm = {"behavior_mean": [0.7, -1.2, 0.0], "behavior_std": [2.5, 1.5, 1.0]}
    raw = np.concatenate([eye / 0.5, rng.standard_normal((t, 1))], 1)
    gaze = FrameGazeCorrection(NAMES, ["s"], COLUMNS, eye_px_per_unit=0.5, normalization={"s": norm})
    with torch.no_grad():
        out = gaze(torch.from_numpy(screen)[None, None], standardised(raw, norm)[None], "s")[0, 0].numpy()
    retina = retina_of(screen, eye, m)
    np.testing.assert_allclose(out, retina, rtol=0, atol=1e-5)
    # where the retina looks beyond the screen, the stimulus mean: 0
    ys, xs = np.mgrid[:h, :w]
    for i, (dx, dy) in enumerate(eye):
        beyond = (xs + dx < 0) | (xs + dx >= w) | (ys + dy < 0) | (ys + dy >= h)
        assert np.abs(out[i][beyond]).max(initial=0) < 1e-5
        interior = ~beyond
        np.testing.assert_allclose(out[i][interior], screen[i][(ys + dy)[interior], (xs + dx)[interior]],
                                   rtol=0, atol=1e-5)


def test_a_half_pixel_shift_of_a_ramp_moves_the_ramp_by_half_a_pixel():
    h, w = 6, 9
    ramp_x = torch.arange(w, dtype=torch.float32).expand(h, w)
    ramp_y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    stim = torch.stack([ramp_x, ramp_y])[None, :, None]  # (1, 2, 1, H, W): one channel per ramp
    norm = {"behavior_mean": [0.0, 0.0, 0.0], "behavior_std": [1.0, 1.0, 1.0]}
    # 0.25 units at 2 pixels per unit: half a pixel right in x, half a pixel up (towards row 0) in y
    beh = torch.tensor([[[0.25, -0.25, 0.0]]])
    gaze = FrameGazeCorrection(NAMES, ["s"], COLUMNS, eye_px_per_unit=2.0, normalization={"s": norm})
    with torch.no_grad():
        out = gaze(stim, beh, "s")[0, :, 0]
    # away from the last column and the first row, which reach half a pixel beyond the frame (0)
    torch.testing.assert_close(out[0, 1:, :-1], ramp_x[1:, :-1] + 0.5)
    torch.testing.assert_close(out[1, 1:, :-1], ramp_y[1:, :-1] - 0.5)
    torch.testing.assert_close(out[0, 1:, -1], torch.full((h - 1,), (w - 1) / 2))  # half the last pixel, half 0
    torch.testing.assert_close(out[1, 0], torch.zeros(w))  # half of row 0 (value 0), half beyond


@pytest.mark.parametrize("what", ["stim", "eye"])
def test_a_change_at_frame_t_plus_1_leaves_frames_up_to_t_unchanged(what):
    torch.manual_seed(0)
    t0, t = 7, 12
    gaze = FrameGazeCorrection(NAMES, ["s"], COLUMNS, eye_px_per_unit=1.3)
    stim, beh = torch.randn(2, 1, t, 8, 10), torch.randn(2, t, 3)
    with torch.no_grad():
        before = gaze(stim, beh, "s")
        stim, beh = stim.clone(), beh.clone()
        if what == "stim":
            stim[:, :, t0 + 1] = torch.randn_like(stim[:, :, t0 + 1])
        else:
            beh[:, t0 + 1, :2] += 1.7
        after = gaze(stim, beh, "s")
    torch.testing.assert_close(after[:, :, : t0 + 1], before[:, :, : t0 + 1], rtol=0, atol=0)
    assert (after[:, :, t0 + 1] - before[:, :, t0 + 1]).abs().max() > 1e-3


def test_gain_and_offset_are_per_session_start_at_eye_px_per_unit_and_zero_and_get_gradients():
    gaze = FrameGazeCorrection(NAMES, ["a", "b.2"], COLUMNS, eye_px_per_unit=1.5)
    for s in ("a", "b.2"):
        assert gaze.learned()[s] == {"gain_x": 1.5, "gain_y": 1.5, "offset_x": 0.0, "offset_y": 0.0}
    assert sum(p.numel() for p in gaze.parameters()) == 2 * (2 + 2)
    torch.manual_seed(0)
    stim, beh = torch.randn(2, 1, 5, 8, 10), torch.randn(2, 5, 3)
    (gaze(stim, beh, "a") * torch.randn(2, 1, 5, 8, 10)).sum().backward()
    a, b = "a", "b·2"  # ParameterDict keys: '.' is not allowed in them
    for p in (gaze.gain[a], gaze.offset[a]):
        assert p.grad is not None and (p.grad != 0).all()
    assert gaze.gain[b].grad is None and gaze.offset[b].grad is None  # another session's calibration is untouched


def test_the_gaze_calibration_is_optimised_without_weight_decay():
    encoder, info, _, _ = build_encoder_without_data(compose_config([*MICRO, "gaze=per_frame"]))
    module = EncoderModule(encoder, info.n_neurons, {"lr": 0.01, "weight_decay": 0.1, "warmup_steps": 1,
                                                     "min_lr_ratio": 0.05, "position_lr_ratio": 0.1})
    module._trainer = type("Trainer", (), {"estimated_stepping_batches": 10})()
    opt = module.configure_optimizers()["optimizer"]
    calibration = {id(p) for p in encoder.gaze.parameters()}
    (group,) = [g for g in opt.param_groups if calibration & {id(p) for p in g["params"]}]
    assert {id(p) for p in group["params"]} == calibration and group["weight_decay"] == 0.0
    others = [g for g in opt.param_groups if g is not group]
    assert all(g["weight_decay"] == 0.1 for g in others)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(module.parameters()))


@pytest.mark.parametrize("names,px,key", [
    (["running", "pupil"], 1.0, "eye_x"),
    ([], 1.0, "eye_x"),
    (NAMES, None, "eye_px_per_unit"),
])
def test_missing_eye_columns_or_a_null_eye_px_per_unit_is_an_error_naming_them(names, px, key):
    with pytest.raises(ValueError, match=key):
        FrameGazeCorrection(names, ["s"], COLUMNS, eye_px_per_unit=px)


def test_a_null_data_eye_px_per_unit_fails_the_build_naming_the_config_keys():
    with pytest.raises(ConfigError) as e:
        build_encoder_without_data(compose_config([*MICRO, "gaze=per_frame", "data.eye_px_per_unit=null"]))
    assert e.value.key == "gaze.eye_px_per_unit" and "data.eye_px_per_unit" in str(e.value)


def test_gaze_per_frame_composes_and_an_unknown_key_under_gaze_is_rejected():
    cfg = compose_config(["data=synthetic_primate", "gaze=per_frame", "shifter=none"])
    assert cfg.gaze._target_ == "neuroenc.model.gaze.FrameGazeCorrection"
    assert list(cfg.gaze.columns) == COLUMNS and cfg.gaze.eye_px_per_unit == cfg.data.eye_px_per_unit
    assert compose_config([]).gaze._target_ is None  # off by default
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as e:
        compose_config(["gaze=per_frame", "gaze.gain=2"])
    assert "gain" in str(e.value) + str(e.value.__cause__)


def test_a_short_training_run_with_gaze_per_frame_reports_each_sessions_calibration(tmp_path):
    from neuroenc.training.run import train

    metrics = train(compose_config([*MICRO, "gaze=per_frame", "trainer.max_epochs=1", "eval_init=false",
                                    "logger.csv=null"]), tmp_path)
    assert metrics["status"] == "finished" and metrics["parameters"]["gaze"] == 2 * 4
    assert set(metrics["gaze"]) == {"sim00", "sim01"}
    for calibration in metrics["gaze"].values():
        assert set(calibration) == {"gain_x", "gain_y", "offset_x", "offset_y"}
        assert all(math.isfinite(v) for v in calibration.values())
        assert calibration != {"gain_x": 1.0, "gain_y": 1.0, "offset_x": 0.0, "offset_y": 0.0}  # it learned
    # the checkpoint holds the calibration and the eye columns' statistics it works in
    model = neuroenc.load(metrics["best_checkpoint"])
    assert model.encoder.gaze.learned() == metrics["gaze"]
    stats = model.normalization["sim00"]
    torch.testing.assert_close(model.encoder.gaze.eye_mean[0], torch.tensor(stats["behavior_mean"][:2]).float())
