"""The reference analysis's presets (conf/experiment) keep their sizes, compose with the data config and train a step."""

import json

import pytest
from conftest import CONF, TINY_DATA, compose_config, run_cli
from hydra.utils import instantiate

from neuroenc.config.validate import ConfigError, check
from neuroenc.data.sessions import SessionFormatError
from neuroenc.data.synthetic import BEHAVIOR_NAMES, SimulationParams, simulate
from neuroenc.training.build import build_datamodule
from neuroenc.training.run import train

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# the presets' sizes are the reference analysis's at its 120 Hz; their temporal sizes follow the data's frame rate
AT_120HZ = ["data.simulation.frame_rate=120"]
# TINY_DATA is 30 Hz: its 16-frame windows of 16x24 frames fit 8 of the presets' 2-frame tubelets (the reference analysis's
# 8 frames at 120 Hz); one training step of batch 2
ONE_STEP = [*TINY_DATA, "data.window=16", "data.burn_in=8", "data.batch_size=2", "trainer.max_steps=1",
            "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "eval_init=false",
            "logger.csv=null"]


def test_the_ladder_and_the_baselines_are_all_there():
    assert set(PRESETS) >= {"resnet_small_gru_aa", "vivit_small", "vivit_p1", "vivit_p12", "vivit_p123",
                            "vivit_p1234", "hybrid_small"}


def test_presets_keep_the_seed_sizes_and_each_rung_adds_one_fix():
    c = {p: compose_config([f"experiment={p}", *AT_120HZ]) for p in PRESETS}
    r = c["resnet_small_gru_aa"]
    assert [s.out_channels for s in r.convnet.stages] == [128, 128, 256]
    stages = [(s.stride, s.pool, s.dilation) for s in r.convnet.stages]
    assert stages == [(2, "none", 1), (2, "aablur", 1), (1, "none", 2)]
    # the reference analysis's (VisionCore learned_res_small_gru_optimized_aa): 3x5x5, time halved in stage 0,
    # dilation 2 in time as well as space in stage 2, one convolution per stage
    assert [list(s.kernel_size) for s in r.convnet.stages] == [[3, 5, 5], [3, 5, 5], [3, 3, 3]]
    assert [(s.temporal_stride, s.temporal_dilation, s.convs) for s in r.convnet.stages] == [(2, 1, 1), (1, 1, 1),
                                                                                             (1, 2, 1)]
    assert [s.dropout for s in r.convnet.stages] == [0.0, 0.1, 0.2]
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


@pytest.mark.parametrize("data", [AT_120HZ, ["data=synthetic_primate"], ["data=sessions", "data.frame_rate=120"]])
def test_at_120hz_the_presets_give_the_seeds_temporal_sizes(data, tmp_path):
    for p in PRESETS:
        c = compose_config([f"experiment={p}", *data, f"data.root={tmp_path}"] if "data=sessions" in data
                           else [f"experiment={p}", *data])
        assert c.frontend.kernel_size == 16
        if "tokenizer" in c.convnet:
            assert list(c.convnet.tokenizer.stride) == ([8, 8, 8] if p == "vivit_small" else [8, 4, 4])
        time_kernels = [s.kernel_size[0] for s in c.convnet.get("stages", [])]
        assert time_kernels == ([1, 1, 1] if p == "hybrid_small" else [3, 3, 3] if time_kernels else [])
        if p == "resnet_small_gru_aa":
            assert [s.temporal_stride for s in c.convnet.stages] == [2, 1, 1]


def test_at_30hz_the_presets_temporal_sizes_span_the_seeds_milliseconds():
    """16 taps and 8-frame tubelets at 120 Hz are 133 and 67 ms: 4 taps and 2 frames at 30 Hz, and
    3-frame time kernels (25 ms) are shorter than a 30 Hz frame."""
    c = {p: compose_config([f"experiment={p}"]) for p in PRESETS}
    assert all(c[p].frontend.kernel_size == 4 for p in PRESETS)
    assert list(c["vivit_small"].convnet.tokenizer.stride) == [2, 8, 8]
    assert list(c["vivit_p1"].convnet.tokenizer.stride) == [2, 4, 4]
    r = c["resnet_small_gru_aa"].convnet.stages
    assert [list(s.kernel_size) for s in r] == [[1, 5, 5], [1, 5, 5], [1, 3, 3]]
    assert [s.temporal_stride for s in r] == [1, 1, 1]  # a 33 ms frame is longer than the reference analysis's 17 ms step
    check(c["vivit_p1"])
    build_datamodule(c["vivit_p1"])


def test_presets_on_sessions_need_the_sessions_frame_rate(tmp_path):
    with pytest.raises(Exception, match="data.frame_rate") as e:
        check(compose_config(["experiment=vivit_p1", "data=sessions", f"data.root={tmp_path}"]))
    assert "frontend.kernel_size" in str(e.value)  # and the key that asked for it
    with pytest.raises(ConfigError) as e:
        build_datamodule(compose_config(["experiment=vivit_p1", "data=sessions", f"data.root={tmp_path}",
                                         "data.frame_rate=0"]))
    assert e.value.key == "data.frame_rate"


def test_a_data_frame_rate_that_is_not_the_sessions_stops_naming_it(tmp_path):
    simulate(tmp_path / "sessions", SimulationParams(num_sessions=1, neurons_min=3, neurons_max=3, trials_train=2,
                                                     trial_frames=40, height=8, width=8))
    cfg = compose_config(["data=sessions", f"data.root={tmp_path / 'sessions'}", "data.frame_rate=120", "data.window=16",
                          "data.burn_in=4"])
    with pytest.raises(SessionFormatError, match=r"data.frame_rate=120.0 but .* 30.0 Hz"):
        instantiate(cfg.data).setup()
    instantiate(cfg.data, frame_rate=30.0).setup()  # the right rate is accepted


@pytest.mark.parametrize("data", [[], ["data=sessions"]])
def test_presets_compose_with_any_data_config(data, tmp_path):
    data = data + [f"data.root={tmp_path}", "data.frame_rate=30"] if data else data
    for p in PRESETS:
        cfg = compose_config([f"experiment={p}", *data, "data.window=300"])
        check(cfg)
        build_datamodule(cfg)  # the data's own arguments are checked as it is made
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
        build_datamodule(small)
        assert small.modulator.hidden_dim * 8 == full.modulator.hidden_dim
        if "stages" in full.convnet:
            assert [s.out_channels * 8 for s in small.convnet.stages] == [s.out_channels for s in full.convnet.stages]
        if "embedding_dim" in full.convnet:
            assert (small.convnet.embedding_dim * 8, small.convnet.ff_dim * 8) == (full.convnet.embedding_dim,
                                                                                 full.convnet.ff_dim)
            assert small.convnet.num_heads == full.convnet.num_heads  # depth and heads are not widths


def test_scale_never_squeezes_the_behaviour_embedding_below_the_behaviour_columns():
    """The behaviour embedding is not a scaled width: at scale=0.125 the reference analysis's 16 and 32 would be 2
    and 4, a bottleneck on the simulator's 4 behaviour columns that vivit_p12 would then 'fix'."""
    for p in PRESETS:
        full, small = compose_config([f"experiment={p}"]), compose_config([f"experiment={p}", "scale=0.125"])
        assert small.modulator.beh_emb_dim == full.modulator.beh_emb_dim >= len(BEHAVIOR_NAMES)
    assert compose_config(["experiment=vivit_small", "scale=0.125"]).modulator.beh_emb_dim == 16
    assert compose_config(["experiment=vivit_p12", "scale=0.125"]).modulator.beh_emb_dim == 32


def test_scale_on_a_config_without_scaled_widths_is_an_error():
    with pytest.raises(ConfigError) as e:
        check(compose_config(["scale=0.5"]))
    assert e.value.key == "scale" and "${scaled:N}" in str(e.value)
