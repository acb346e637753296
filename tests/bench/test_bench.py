"""``python -m neuroenc.bench data`` generates a dataset, times the loader per worker count, reports
JSON, and removes the dataset afterwards."""

import json
import statistics

import pytest
import torch
from conftest import TINY_MODEL, compose_config, run_cli

from neuroenc.analysis.inspector import count_flops
from neuroenc.bench.__main__ import available, main
from neuroenc.bench.model import main as model_main
from neuroenc.bench.model import measure, presets
from neuroenc.config.validate import ConfigError
from neuroenc.training.build import (
    apply_speed_options,
    build_encoder_without_data,
)


def test_dispatcher_lists_benchmarks_and_refuses_unknown_ones(capsys):
    assert "data" in available()
    assert main(["nosuch"]) == 2 and "data" in capsys.readouterr().err


def test_data_benchmark_reports_throughput_and_memory_and_cleans_up(tmp_path):
    r = run_cli(["data", "--sessions", "2", "--frames", "500", "--neurons", "5", "--trial-frames", "100",
                 "--height", "8", "--width", "12", "--seconds", "0.3", "--workers", "0,1", "--dir", str(tmp_path),
                 "--json", "data.window=20", "data.burn_in=5", "data.batch_size=4"],
                cwd=tmp_path, module="neuroenc.bench", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["dataset"]["sessions"] == 2 and out["data_config"] == {"window": 20, "burn_in": 5, "batch_size": 4}
    assert [x["workers"] for x in out["loader"]] == [0, 1]
    for x in out["loader"]:
        assert x["windows"] > 0 and x["windows_per_s"] > 0 and x["mb_per_s"] > 0 and x["peak_rss_main_mib"] > 0
    assert out["generate_s"] >= 0 and out["open_cached_s"] >= 0 and out["peak_pss_total_mib"] > 0
    assert list(tmp_path.iterdir()) == []  # the generated dataset is gone


# --- python -m neuroenc.bench model ---------------------------------------------------------

BENCH_MODEL = [*TINY_MODEL, "data.burn_in=8"]
BENCH_INPUT = (24, 12, 16)


def test_model_benchmark_reports_step_time_throughput_flops_and_memory():
    r = measure(BENCH_MODEL, BENCH_INPUT, batch=2, repeats=3, warmup=0, device="cpu", peak_tflops=0.5)
    assert r["input"] == {"frames": 24, "height": 12, "width": 16, "burn_in": 8} and r["batch"] == 2
    assert len(r["step_s_all"]) == 3 and r["step_s"] == statistics.median(r["step_s_all"]) > 0
    assert r["windows_per_s"] == pytest.approx(2 / r["step_s"])
    # every frame after the burn-in is a target: 16 per window
    assert r["scored_frames_per_window"] == 16 and r["scored_frames_per_s"] == pytest.approx(2 * 16 / r["step_s"])
    # backward costs one (weights only, e.g. the frontend's) to two (weights and input) forwards
    encoder, info, t, _ = build_encoder_without_data(compose_config(BENCH_MODEL), BENCH_INPUT)
    forward = 2 * count_flops(encoder, info, t)["total"]
    assert 2 * forward < r["flops_per_step"] <= 3 * forward
    assert r["achieved_tflops"] == pytest.approx(r["flops_per_step"] / r["step_s"] / 1e12)
    assert r["mfu"] == pytest.approx(r["achieved_tflops"] / 0.5)
    assert r["peak_memory_mib"] > 0 and r["parameters"] == sum(p.numel() for p in encoder.parameters())


def test_model_benchmark_runs_bf16_mixed():
    r = measure([*BENCH_MODEL, "trainer.precision=bf16-mixed"], BENCH_INPUT, batch=1, repeats=1, warmup=0,
                device="cpu", peak_tflops=None)
    assert r["precision"] == "bf16-mixed" and r["step_s"] > 0 and r["mfu"] is None


def test_model_benchmark_refuses_a_precision_it_does_not_run(capsys):
    assert model_main([*BENCH_MODEL, "trainer.precision=16-mixed", "--input", "24,12,16"]) == 2
    assert "trainer.precision" in capsys.readouterr().err


def test_channels_last_gives_the_same_rates():
    cfg = compose_config(BENCH_MODEL)
    encoder, info, t, _ = build_encoder_without_data(cfg, BENCH_INPUT)
    torch.nn.init.normal_(encoder.readout(info.session_ids[0]).features)
    stim, beh = torch.randn(2, 1, *BENCH_INPUT), torch.randn(2, 24, info.behavior_dim)
    with torch.no_grad():
        eager = encoder(stim, beh, info.session_ids[0])
        cfg.channels_last = True
        fast = apply_speed_options(encoder, cfg)(stim, beh, info.session_ids[0])
    torch.testing.assert_close(fast, eager, rtol=1e-5, atol=1e-6)


def test_compile_without_a_compiler_stops_naming_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    cfg = compose_config([*BENCH_MODEL, "compile=true"])
    encoder, *_ = build_encoder_without_data(cfg, BENCH_INPUT)
    with pytest.raises(ConfigError) as e:
        apply_speed_options(encoder, cfg)
    assert e.value.key == "compile" and "C++ compiler" in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("preset", presets())
def test_every_preset_compiles_and_gives_the_eager_rates(preset):
    overrides = [f"experiment={preset}", "data.burn_in=8"]
    cfg = compose_config([*overrides, "compile=true"])
    torch.manual_seed(0)
    encoder, info, t, _ = build_encoder_without_data(cfg, (16, 16, 24))
    session = info.session_ids[0]
    torch.nn.init.normal_(encoder.readout(session).features, std=0.1)
    stim, beh = torch.randn(2, 1, 16, 16, 24), torch.randn(2, 16, info.behavior_dim)
    with torch.no_grad():
        eager = encoder(stim, beh, session)
    apply_speed_options(encoder, cfg)
    compiled = encoder(stim, beh, session)
    compiled.sum().backward()  # the backward graph compiles too
    torch.testing.assert_close(compiled.detach(), eager, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_all_presets_table_has_a_row_per_preset(tmp_path):
    r = run_cli(["model", "--all-presets", "--input", "16,16,24", "data.burn_in=8", "--repeats", "1", "--warmup",
                 "0", "--save", str(tmp_path / "all.json")], cwd=tmp_path, module="neuroenc.bench", timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "all.json").read_text())
    assert [row["overrides"][0] for row in rows] == [f"experiment={p}" for p in presets()]
    assert all(row["step_s"] > 0 and row["flops_per_step"] > 0 for row in rows)
    for p in presets():
        assert f"experiment={p}" in r.stdout  # the table


@pytest.mark.slow
def test_importing_a_60_s_304x608_movie_stays_under_2_gib(tmp_path):
    """The NWB importer reads a long movie a chunk at a time: the child's peak memory (torch and
    pynwb's ~0.6 GB included) stays under 2 GiB for Allen's natural-movie size."""
    proc = run_cli(["nwb_import", "--json", "--dir", str(tmp_path)], cwd=tmp_path, module="neuroenc.bench")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["exit_status"] == 0 and result["source_mb"] > 300
    assert result["import_peak_rss_mb"] < 2048


def test_model_benchmark_profile_lists_the_operations_with_the_most_self_time():
    r = measure(BENCH_MODEL, BENCH_INPUT, batch=1, repeats=2, warmup=0, device="cpu", peak_tflops=None,
                profile_top=5)
    ops = r["profile"]
    assert len(ops) == 5 and all(op["op"] and op["calls_per_step"] > 0 for op in ops)
    times = [op["self_s_per_step"] for op in ops]
    assert times == sorted(times, reverse=True) and times[0] > 0
    assert 0 < sum(op["share"] for op in ops) <= 1


@pytest.mark.slow
def test_model_benchmark_against_a_commit_times_both_trees_and_their_ratio(tmp_path):
    r = run_cli(["model", *BENCH_MODEL, "--input", "24,12,16", "--batch", "1", "--repeats", "2", "--warmup", "0",
                 "--against", "HEAD", "--rounds", "2", "--save", str(tmp_path / "ab.json")],
                cwd=tmp_path, module="neuroenc.bench", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "ab.json").read_text())
    this, ref = out["runs"]
    assert this["label"].startswith("this tree") and ref["label"].startswith("HEAD")
    assert len(this["step_s_all"]) == len(ref["step_s_all"]) == 4 and len(out["round_speedups"]) == 2
    assert out["speedup"] == pytest.approx(ref["step_s"] / this["step_s"])
    assert "speed-up of this tree over HEAD" in r.stdout


def test_model_benchmark_against_an_unknown_revision_names_it(capsys):
    assert model_main([*BENCH_MODEL, "--input", "24,12,16", "--against", "no-such-rev"]) == 2
    assert "--against" in capsys.readouterr().err


def test_readout_start_benchmark_scores_the_start_of_each_kernel_duration(tmp_path, capsys):
    small = [f"data.cache_dir={tmp_path}", "data.simulation.num_sessions=1", "data.simulation.neurons_min=12",
             "data.simulation.neurons_max=12", "data.simulation.trials_train=6", "data.simulation.trials_val=1",
             "data.simulation.trials_test=1"]
    assert main(["readout_start", *small, "--kernel-ms", "150", "300"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| 1")
            or line.startswith("| 3")]
    assert [float(r[0]) for r in rows] == [150.0, 300.0]
    assert all(int(r[1]) == 12 and 0 <= float(r[2]) < 36 for r in rows)  # neurons; median px within the frame
