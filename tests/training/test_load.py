"""``neuroenc.load``: a checkpoint back as a model for prediction, and clear errors when it cannot be."""

import subprocess
import sys

import pytest
import torch
from conftest import MICRO_DATA, MICRO_RUN, compose_config

import neuroenc
from neuroenc.training.build import build_datamodule
from neuroenc.training.loading import ConfigMismatchError


def test_load_returns_an_eval_model_with_its_config_and_session_names_that_predicts(micro_run):
    run_dir, metrics = micro_run
    model = neuroenc.load(metrics["best_checkpoint"])
    assert not model.training
    assert model.session_ids == ["sim00", "sim01"] == list(metrics["val_bps_per_session"])
    assert model.config.data.window == 24 and model.config.seed == 2
    assert model.checkpoint["val_scores"]["val_bps_overall"] == metrics["best_val_bps_overall"]
    saved = torch.load(metrics["best_checkpoint"], weights_only=False)["state_dict"]
    assert all(torch.equal(v, saved[f"encoder.{k}"]) for k, v in model.state_dict().items())

    dm = build_datamodule(model.config)
    batch = next(iter(dm.val_dataloader()))
    session = model.session_ids[int(batch["session"][0])]
    with torch.no_grad():
        rates = model(batch["stim"], batch["behavior"], session)
    assert rates.shape == batch["robs"].shape and (rates > 0).all() and torch.isfinite(rates).all()


def test_load_with_the_training_config_succeeds(micro_run):
    _, metrics = micro_run
    neuroenc.load(metrics["best_checkpoint"], config=compose_config(MICRO_RUN))


def test_load_against_a_different_model_config_lists_every_mismatch(micro_run):
    _, metrics = micro_run
    other = compose_config([*MICRO_DATA, "frontend.num_channels=3", "frontend.kernel_size=4",
                            "convnet.stages=[{out_channels:8,kernel_size:[2,3,3],stride:1}]", "modulator=convgru"])
    with pytest.raises(ConfigMismatchError) as e:
        neuroenc.load(metrics["best_checkpoint"], config=other)
    message = str(e.value)
    print(message)
    assert "frontend.num_channels: checkpoint 2, config 3" in message
    assert "convnet.stages[0].out_channels: checkpoint 4, config 8" in message
    assert "modulator._target_: checkpoint 'neuroenc.model.modulator.NoModulator'" in message
    assert "modulator.hidden_dim: checkpoint (absent), config " in message
    assert len(e.value.differences) == 6  # num_channels, out_channels, modulator target + 3 convgru keys
    assert "optim" not in message and "trainer" not in message  # not part of the model


def test_load_of_a_file_that_is_no_neuroenc_checkpoint_says_so(tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not written by neuroenc training"):
        neuroenc.load(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        neuroenc.load(tmp_path / "missing.ckpt")


def test_neuroenc_load_does_not_make_import_neuroenc_heavy():
    r = subprocess.run([sys.executable, "-c", "import sys, neuroenc; print('torch' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"  # python -m neuroenc parses its command line before torch loads
    import neuroenc.trained

    assert neuroenc.load is neuroenc.trained.load and neuroenc.TrainedEncoder is neuroenc.trained.TrainedEncoder


def test_load_returns_a_trained_encoder_that_holds_its_parts_and_sets_nothing_on_the_encoder(micro_run):
    _, metrics = micro_run
    model = neuroenc.load(metrics["best_checkpoint"])
    assert isinstance(model, neuroenc.TrainedEncoder) and not model.encoder.training
    assert model.checkpoint.path == str(metrics["best_checkpoint"]) and model.checkpoint["epoch"] == model.checkpoint.epoch
    assert model.config.data.window == compose_config(MICRO_RUN).data.window
    assert model.session_ids == model.info.session_ids and model.readouts is model.encoder.readouts
    for name in ("config", "info", "checkpoint", "predict", "normalization"):  # the encoder is left as built
        assert name not in vars(model.encoder)
    dm = model.open_data("val")
    assert [s.id for s in dm.sessions] == model.session_ids


def test_load_against_a_config_with_another_shifter_is_refused(micro_run):
    _, metrics = micro_run
    with pytest.raises(ConfigMismatchError, match=r"shifter\._target_: checkpoint 'neuroenc\.model\.shifter"):
        neuroenc.load(metrics["best_checkpoint"], config=compose_config([*MICRO_RUN, "shifter=none"]))


def test_a_checkpoint_from_before_the_gaze_option_loads_and_matches_the_config_without_it(micro_run, tmp_path):
    """Configs stored before ``gaze`` existed lack the group: their model had no gaze correction (gaze=none)."""
    _, metrics = micro_run
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=False)
    del ckpt["neuroenc"]["config"]["gaze"]
    assert not any(k.startswith("encoder.gaze") for k in ckpt["state_dict"])
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    model = neuroenc.load(old, config=compose_config(MICRO_RUN))
    assert model.encoder.gaze is None
    with pytest.raises(ConfigMismatchError, match=r"gaze\._target_: checkpoint None, config 'neuroenc\.model\.gaze"):
        neuroenc.load(old, config=compose_config([*MICRO_RUN, "gaze=per_frame"]))


def test_a_checkpoint_without_data_info_is_refused_naming_the_file_and_the_key(micro_run, tmp_path):
    _, metrics = micro_run
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=False)
    del ckpt["neuroenc"]["data_info"]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    with pytest.raises(ValueError, match="data_info") as e:
        neuroenc.load(old)
    assert str(old) in str(e.value)
