"""The seed's presets (conf/experiment) keep their sizes, compose with the data config and train a step."""

import json

import pytest

from conftest import CONF, TINY_DATA, compose_config, run_cli
from neuroenc.train import train
from neuroenc.validate import ConfigError, check

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# TINY_DATA's 16x24 frames in 16-frame windows fit two 8x8x8 tubelets; one training step of batch 2
ONE_STEP = [*TINY_DATA, "data.window=16", "data.burn_in=8", "data.batch_size=2", "trainer.max_steps=1",
            "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "eval_init=false",
            "logger.csv=null"]


def test_the_ladder_and_the_baselines_are_all_there():
    assert set(PRESETS) >= {"resnet_small_gru_aa", "vivit_small", "vivit_p1", "vivit_p12", "vivit_p123",
                            "vivit_p1234", "hybrid_small"}


def test_presets_keep_the_seed_sizes_and_each_rung_adds_one_fix():
    c = {p: compose_config([f"experiment={p}"]) for p in PRESETS}
    r = c["resnet_small_gru_aa"]
    assert [s.out_channels for s in r.convnet.stages] == [128, 128, 256]
    stages = [(s.stride, s.pool, s.dilation) for s in r.convnet.stages]
    assert stages == [(2, "none", 1), (2, "aablur", 1), (1, "none", 2)]
    assert (r.frontend.kernel_size, r.frontend.num_channels, r.frontend.anti_aliasing) == (16, 4, True)
    assert (r.modulator.hidden_dim, r.modulator.beh_emb_dim) == (256, 32)
    v = c["vivit_small"]
    assert list(v.convnet.tokenizer.stride) == [8, 8, 8] and v.convnet.tokenizer.kernel_size is None
    assert (v.convnet.embedding_dim, v.convnet.num_spatial_blocks, v.convnet.num_temporal_blocks, v.convnet.num_heads,
            v.convnet.ff_dim) == (192, 4, 4, 4, 768)
    assert (v.modulator.hidden_dim, v.modulator.beh_emb_dim, v.frontend.anti_aliasing) == (192, 16, False)
    assert list(c["vivit_p1"].convnet.tokenizer.stride) == [8, 4, 4]
    assert (c["vivit_p12"].modulator.hidden_dim, c["vivit_p12"].modulator.beh_emb_dim) == (256, 32)
    assert c["vivit_p123"].frontend.anti_aliasing and not c["vivit_p12"].frontend.anti_aliasing
    p4 = c["vivit_p1234"].convnet
    assert (p4.embedding_dim, p4.num_spatial_blocks, p4.num_temporal_blocks, p4.ff_dim) == (256, 6, 6, 1024)
    ladder = ["vivit_small", "vivit_p1", "vivit_p12", "vivit_p123", "vivit_p1234"]
    for before, after in zip(ladder, ladder[1:]):  # each rung keeps everything the previous one set
        assert c[after].data == c[before].data and c[after].readout == c[before].readout
    assert c["hybrid_small"].convnet._target_.endswith("Hybrid")


@pytest.mark.parametrize("data", [[], ["data=sessions"]])
def test_presets_compose_with_any_data_config(data, tmp_path):
    data = data + [f"data.root={tmp_path}"] if data else data
    for p in PRESETS:
        cfg = compose_config([f"experiment={p}", *data, "data.window=300"])
        check(cfg)
        assert cfg.data.window == 300


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_one_step(preset, tmp_path):
    result = train(compose_config([f"experiment={preset}", *ONE_STEP]), tmp_path)
    assert result["steps"] == 1 and result["status"] == "finished"
    assert result["parameters"]["total"] > 0


@pytest.mark.parametrize("args", [
    ["convnet=vivit", "convnet.tokenizer.stride=[8,4,4]"],
    # composes as test_preset_trains_one_step does; the CLI adds only Hydra's app, tested just above
    pytest.param(["experiment=vivit_p1"], marks=pytest.mark.slow),
])
def test_the_users_commands_work_as_written(args, tmp_path):
    r = run_cli([*args, *ONE_STEP], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (metrics,) = (tmp_path / "outputs").rglob("metrics.json")
    assert json.loads(metrics.read_text())["steps"] == 1


def test_scale_shrinks_every_presets_widths_and_keeps_their_ratios():
    for p in PRESETS:
        full, small = compose_config([f"experiment={p}"]), compose_config([f"experiment={p}", "scale=0.125"])
        check(small)
        assert small.modulator.hidden_dim * 8 == full.modulator.hidden_dim
        if "stages" in full.convnet:
            assert [s.out_channels * 8 for s in small.convnet.stages] == [s.out_channels for s in full.convnet.stages]
        if "embedding_dim" in full.convnet:
            assert (small.convnet.embedding_dim * 8, small.convnet.ff_dim * 8) == (full.convnet.embedding_dim,
                                                                                 full.convnet.ff_dim)
            assert small.convnet.num_heads == full.convnet.num_heads  # depth and heads are not widths


def test_scale_on_a_config_without_scaled_widths_is_an_error():
    with pytest.raises(ConfigError) as e:
        check(compose_config(["scale=0.5"]))
    assert e.value.key == "scale" and "${scaled:N}" in str(e.value)
