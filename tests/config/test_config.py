"""Bad configs fail before any training, with a message naming the key."""

import pytest
from conftest import ROOT, TINY_DATA, TINY_MODEL, compose_config, run_cli
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from neuroenc.config.validate import ConfigError, check
from neuroenc.data.datamodule import DatasetInfo
from neuroenc.training.build import build_datamodule, build_encoder


def test_default_config_composes_and_passes_checks():
    cfg = compose_config([])
    check(cfg)
    assert cfg.convnet._target_.endswith("ResNet") and cfg.data.simulation.seed == cfg.seed


def test_top_level_seed_seeds_data_order_and_simulation():
    cfg = compose_config(["seed=7"])
    assert cfg.data.seed == 7 and cfg.data.simulation.seed == 7


@pytest.mark.parametrize("override,key", [
    ("convnet.chanels=3", "chanels"),
    ("modulator.hiden_dim=3", "hiden_dim"),
    ("trainer.max_epoch=3", "max_epoch"),
])
def test_unknown_key_fails_at_composition_naming_it(override, key):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as e:
        compose_config([override])
    assert key in str(e.value) + str(e.value.__cause__)


@pytest.mark.parametrize("override,key", [
    ("trainer.max_epochs=many", "max_epochs"),
    ("data.window=long", "window"),
    ("frontend.anti_aliasing=maybe", "anti_aliasing"),
    ("convnet.stages=[{out_channels:wide}]", "out_channels"),
])
def test_wrong_type_fails_at_composition_naming_the_key(override, key):
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose_config([override])
    assert key in str(e.value) + str(e.value.__cause__)


@pytest.mark.parametrize("overrides,key", [
    (["data=sessions"], "data.root"),
    (["data.burn_in=64", "data.window=64"], "data.burn_in"),
    (["convnet.stages=[{out_channels:8,stride:0}]"], "convnet.stages[0].stride"),
    (["convnet.stages=[{out_channels:8,dropout:-0.1}]"], "convnet.stages[0].dropout"),
    (["optim.lr=0"], "optim.lr"),
    (["trainer.limit_train_batches=2.5"], "trainer.limit_train_batches"),
    (["trainer.limit_val_batches=-1"], "trainer.limit_val_batches"),
    (["trainer.val_check_interval=often"], "trainer.val_check_interval"),
])
def test_impossible_value_fails_the_checks_naming_the_key(overrides, key):
    """Cross-group checks (``check``), then the constructors, whose argument the build names by key;
    nothing is simulated or trained."""
    info = DatasetInfo(session_ids=["s"], n_neurons={"s": 5}, mean_rate={"s": None}, behavior_dim=4, in_channels=1,
                       frame_shape=(36, 64), has_oracle=False)
    with pytest.raises(ConfigError) as e:
        cfg = compose_config(overrides)
        check(cfg)
        build_datamodule(cfg)
        build_encoder(cfg, info)
    assert e.value.key == key and f"'{key}'" in str(e.value)


def test_cli_rejects_unknown_key_before_training(tmp_path):
    r = run_cli(["convnet.chanels=3", *TINY_DATA, *TINY_MODEL], cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert "chanels" in r.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_cli_rejects_impossible_value_before_training(tmp_path):
    tiny = [o for o in TINY_DATA if not o.startswith("data.burn_in=")]
    r = run_cli(["data.burn_in=40", *tiny, *TINY_MODEL], cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert "config key 'data.burn_in'" in r.stderr
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))


def test_conf_dir_is_the_one_the_app_uses():
    from neuroenc.config.compose import CONF_DIR

    assert CONF_DIR == ROOT / "conf" and (CONF_DIR / "config.yaml").exists()


def test_help_introduces_neuroenc_and_lists_only_real_options(tmp_path):
    from neuroenc.config.compose import groups, presets

    r = run_cli(["--help"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "neuroenc" in text and "bits per spike" in text
    assert "_schema" not in text and "schema/" not in text and "powered by Hydra" not in text
    for group, options in groups().items():
        if group != "experiment":
            line = next(x for x in text.splitlines() if x.strip().startswith(f"{group}:"))
            assert [o.rstrip("*") for o in line.split(":", 1)[1].strip().split(", ")] == options, line
    assert "convnet:        hybrid, resnet*, vivit" in text  # the default's choices are marked
    for preset in presets():
        assert f"  {preset} " in text
    assert text.count("python -m neuroenc ") >= 3 and "outputs/<date>/<time>/" in text and "metrics.json" in text
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "outputs").exists()


def test_unknown_option_lists_only_real_options(tmp_path):
    r = run_cli(["convnet=vit"], cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert "Could not find 'convnet/vit'" in r.stderr
    listed = r.stderr.split("Available options in 'convnet':", 1)[1].split("Config search path", 1)[0].split()
    assert listed == ["hybrid", "resnet", "vivit"]
    assert "_schema" not in r.stderr


def test_schemas_are_not_options():
    from neuroenc.config.compose import groups

    with pytest.raises(ConfigCompositionException, match="Could not find 'convnet/resnet_schema'"):
        compose_config(["convnet=resnet_schema"])
    assert "schema" not in groups() and not any(o.endswith("_schema") for opts in groups().values() for o in opts)


@pytest.mark.parametrize("value,kind", [("1", int), ("1.0", float), ("0.25", float), ("null", type(None))])
def test_a_batch_limit_keeps_the_type_lightning_reads_it_by(value, kind):
    """``limit_train_batches=1`` is one batch, ``=1.0`` the whole epoch: the int must not become a float."""
    cfg = compose_config([f"trainer.limit_train_batches={value}"])
    check(cfg)
    assert type(cfg.trainer.limit_train_batches) is kind
