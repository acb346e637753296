"""``python -m neuroenc.inspect`` reports the shapes, grids, latencies and receptive fields the
model really has, its parameters and FLOPs, as tables or JSON."""

import json

import pytest
from conftest import compose_config, run_cli

from neuroenc.analysis.inspector import inspect, main, time_steps
from neuroenc.training.build import build_encoder_without_data

TINY_CORE = ["convnet=vivit", "convnet.embedding_dim=16", "convnet.ff_dim=32", "convnet.num_spatial_blocks=1",
             "convnet.num_temporal_blocks=1", "frontend.kernel_size=8"]
TINY_VIVIT = [*TINY_CORE, "modulator.hidden_dim=8", "modulator.beh_emb_dim=4"]


def report(overrides, shape):
    encoder, info, t, _ = build_encoder_without_data(compose_config(overrides), shape)
    return inspect(encoder, info, t), encoder


def by_stage(r):
    return {(s["component"], s["stage"]): s for s in r["stages"]}


def test_vivit_report_gives_true_grids_latency_and_receptive_fields():
    r, _ = report([*TINY_CORE, "convnet.tokenizer.stride=[8,4,4]", "modulator=none"], (90, 20, 32))
    s = by_stage(r)
    tok = s["convnet", "tokenizer"]
    assert tok["token_grid"] == [11, 5, 8] and tok["shape"] == [16, 11, 5, 8] and tok["temporal_stride"] == 8
    assert tok["rf_frames"] == 8 + 8 - 1 and tok["rf_pixels"] == [4, 4]  # frontend taps + one tubelet
    assert s["convnet", "spatial blocks"]["rf_pixels"] == [20, 32]  # spatial attention sees the whole frame
    assert s["convnet", "spatial blocks"]["rf_frames"] == 15  # ... of its own tubelet time only
    assert s["convnet", "temporal blocks"]["rf_whole_window"]
    out = s["convnet", "output"]
    assert out["shape"] == [16, 11, 5, 8] and out["token_grid"] is None
    frames = s["encoder", "steps to frames"]
    assert frames["shape"] == [16, 90, 5, 8]
    # frame t uses the newest tubelet ending at or before t (measured on a window shortened by whole strides)
    assert frames["latency_frames"] == [0, 7]
    assert r["readout"]["grid"] == [5, 8] and r["readout"]["positions"] == 40
    assert r["notes"] and "frames 0-6" in r["notes"][0]
    # FLOPs of the tokenizer's convolution: 2 x (in channels x tubelet) x embedding x tokens
    assert tok["flops"] == 2 * (4 * 8 * 4 * 4) * 16 * (11 * 5 * 8)
    parts = r["components"]
    assert sum(parts[p]["parameters"] for p in ("frontend", "convnet", "modulator", "to_frames", "shifter", "readout")) \
        == parts["total"]["parameters"]
    assert parts["convnet"]["parameters"] == out["parameters"]


def test_notes_say_which_pixels_no_tubelet_covers():
    r, _ = report([*TINY_CORE, "convnet.tokenizer.stride=[4,8,8]", "modulator=none"], (16, 12, 20))
    assert r["notes"][0].startswith("frames 0-2 ")
    assert any("rows 8, 9, 10, 11 of 12" in n for n in r["notes"])
    assert any("columns 16, 17, 18, 19 of 20" in n for n in r["notes"])


def test_resnet_receptive_field_matches_its_kernels():
    stages = "[{out_channels:4,kernel_size:[3,5,5]},{out_channels:4,kernel_size:[2,3,3],dilation:2}]"
    r, _ = report(["frontend=none", f"convnet.stages={stages}", "modulator=none"], (20, 32, 32))
    s = by_stage(r)
    assert (s["frontend", "frontend"]["rf_frames"], s["frontend", "frontend"]["rf_pixels"]) == (1, [1, 1])
    assert (s["convnet", "stage 0"]["rf_frames"], s["convnet", "stage 0"]["rf_pixels"]) == (5, [9, 9])
    assert (s["convnet", "stage 1"]["rf_frames"], s["convnet", "stage 1"]["rf_pixels"]) == (7, [17, 17])
    assert all(row["latency_frames"] == [0, 0] and row["temporal_stride"] == 1 for row in r["stages"])
    assert s["convnet", "output"]["shape"] == [4, 20, 32, 32]


def test_tables_name_every_stage(capsys):
    assert main([*TINY_VIVIT, "--input", "24,16,24"]) == 0
    out = capsys.readouterr().out
    for text in ("tokenizer", "spatial blocks", "temporal blocks", "6x4x6", "readout grid 4x6", "params", "FLOPs"):
        assert text in out


def test_cli_prints_json_with_input_size(tmp_path):
    r = run_cli([*TINY_VIVIT, "convnet.tokenizer.stride=[8,8,8]", "--input", "32,16,24", "--json"], cwd=tmp_path,
                module="neuroenc.inspect", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["input"]["frames"] == 32 and rep["input"]["source"] == "--input"
    assert by_stage(rep)["convnet", "tokenizer"]["token_grid"] == [4, 2, 3]


@pytest.mark.parametrize("override,key", [("convnet.tokenizer.stride=[8,40,40]", "convnet.tokenizer.kernel_size"),
                                          ("convnet.num_head=3", "convnet.num_head")])
def test_impossible_or_unknown_key_exits_naming_it(override, key, capsys):
    assert main([*TINY_VIVIT, override, "--input", "16,36,64"]) == 2
    assert key in capsys.readouterr().err


def test_time_reports_median_of_n_forward_backward_passes():
    cfg = compose_config([*TINY_VIVIT])
    encoder, info, t, _ = build_encoder_without_data(cfg, (16, 16, 24))
    tm = time_steps(encoder, info, t, batch=2, n=3)
    assert tm["batch"] == 2 and len(tm["times_s"]) == 3 and tm["median_s"] == sorted(tm["times_s"])[1] > 0


@pytest.mark.parametrize("preset", ["vivit_p1", "hybrid_small"])
def test_presets_inspect_at_a_small_input(preset):
    r, encoder = report([f"experiment={preset}"], (16, 16, 24))
    assert r["components"]["total"]["parameters"] == sum(p.numel() for p in encoder.parameters())
    assert r["stages"][-1]["shape"][1] == 16  # every frame keeps its features
