"""``neuroenc.analysis.report`` on fabricated job directories: the files training writes, with known numbers."""

import csv
import json
import math

import numpy as np
import pytest
import yaml
from scipy import stats

from neuroenc.analysis.intervals import paired_t_interval, stratified_bootstrap_interval
from neuroenc.analysis.report import main, rf_bins, write_report


def fake_job(sweep, num, overrides, data_seed, per_neuron, best, **metrics):
    d = sweep / f"{num}_{','.join(overrides)}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / "config_resolved.yaml").write_text(yaml.safe_dump(
        {"data": {"window": 64, "seed": data_seed, "simulation": {"seed": data_seed, "num_sessions": 1}}}))
    (d / "metrics.json").write_text(json.dumps({
        "status": "finished", "best_val_bps_overall": best, "val_oracle_fraction": best, "mean_train_step_s": 1.0,
        "parameters": {"total": 10}, "val_bps_per_session": {"sim00": best}, "history": [], **metrics}))
    with (d / "per_neuron.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session", "neuron", "neuron_id", "bps", "rf_size"])
        for i, (bps, rf) in enumerate(per_neuron):
            w.writerow(["sim00", i, i, bps, rf])


def test_rf_breakdown_keeps_neurons_of_different_simulated_datasets_apart(tmp_path):
    # the seed draws the simulated neurons: neuron 0 is a 0.5 px cell in seed 0's data and a 2.5 px
    # cell in seed 1's. Averaging neuron 0 over seeds would put one made-up cell in one bin.
    for num, (model, seed) in enumerate([(m, s) for m in ("a", "b") for s in (0, 1)]):
        shift = 0.0 if model == "a" else 1.0
        cells = [(0.1 + shift, 0.5), (0.2 + shift, 2.5)] if seed == 0 else [(0.3 + shift, 2.5), (0.4 + shift, 0.5)]
        fake_job(tmp_path, num, [f"model={model}", f"seed={seed}"], seed, cells, best=0.1 * (num + 1))
    write_report(tmp_path, compare=("model=a", "model=b"))
    report = (tmp_path / "report.md").read_text()
    # tercile edges of the four cells' sizes (0.5, 0.5, 2.5, 2.5) are 0.5 and 2.5: the first bin is
    # empty, the 0.5 px bin holds 0.1 (seed 0) and 0.4 (seed 1), mean 0.25 over 2 neurons; 2.5 px: 0.2, 0.3
    assert "| config | rf 0-0.5px | rf 0.5-2.5px | rf 2.5-infpx |" in report
    assert "| `model=a` | n/a (n=0) | 0.2500 (n=2) | 0.2500 (n=2) |" in report
    assert "| `model=b` | n/a (n=0) | 1.2500 (n=2) | 1.2500 (n=2) |" in report
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [r["config"] for r in rows] == ["model=a", "model=b"] and rows[0]["seeds"] == "0 1"
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_rf_bins_split_the_sizes_into_equally_filled_terciles():
    sizes = list(np.random.default_rng(0).uniform(0.5, 2.0, 300))
    bins = rf_bins(sizes + [float("nan")])
    assert bins[0][0] == 0.0 and bins[-1][1] == math.inf and len(bins) == 3
    counts = [sum(lo <= s < hi for s in sizes) for lo, hi in bins]
    assert all(abs(c - 100) <= 3 for c in counts), counts  # edges are rounded to 0.01 px
    assert rf_bins([float("nan")]) == []


def test_jobs_are_read_in_job_number_order(tmp_path):
    for num in (9, 10, 2):
        fake_job(tmp_path, num, [f"x={num}"], 0, [(0.1, 1.5)], best=num / 100)
    write_report(tmp_path)
    assert [r["config"] for r in csv.DictReader((tmp_path / "report.csv").open())] == ["x=2", "x=9", "x=10"]


def paired_sweep(sweep, shift, neuron_noise=0.05, seed_noise=0.005, n_neurons=200, seeds=(0, 1, 2), rng_seed=0):
    """Configs a and b, one job per seed on that seed's own simulated data: b's neurons score
    ``shift`` above a's plus independent noise, and so, give or take ``seed_noise``, does its pooled score."""
    rng = np.random.default_rng(rng_seed)
    num = 0
    for seed in seeds:
        base = rng.normal(0.3, 0.2, n_neurons)  # neurons differ a lot; the pairing removes that
        pooled = 0.3 + rng.normal(0, 0.02)
        for model, d in (("a", 0.0), ("b", shift)):
            bps = base + d + rng.normal(0, neuron_noise, n_neurons)
            fake_job(sweep, num, [f"model={model}", f"seed={seed}"], seed, [(v, 1.5) for v in bps],
                     best=pooled + d + rng.normal(0, seed_noise), val_bps_stimulus_shuffled=-0.3)
            num += 1


def compare_rows(sweep):
    return {r["level"]: r for r in csv.DictReader((sweep / "compare.csv").open())}


def test_a_true_difference_is_detected_and_inside_both_intervals(tmp_path):
    paired_sweep(tmp_path, shift=0.05)
    write_report(tmp_path, compare=[("model=a", "model=b")])
    rows = compare_rows(tmp_path)
    assert rows["seeds"]["n_pairs"] == "3" and rows["neurons"]["n_pairs"] == "600"
    for r in rows.values():
        assert 0 < float(r["ci_low"]) < 0.05 < float(r["ci_high"])
        assert r["verdict"].startswith("B better than A by 0.0")
    report = (tmp_path / "report.md").read_text()
    n = rows["neurons"]
    assert (f"| `model=a` | `model=b` | neurons | 600 | {float(n['mean_difference']):.4f} | "
            f"[{float(n['ci_low']):.4f}, {float(n['ci_high']):.4f}] | B better than A by ") in report


def test_identical_distributions_read_no_detectable_difference(tmp_path):
    paired_sweep(tmp_path, shift=0.0)
    write_report(tmp_path, compare=[("model=a", "model=b")])
    for r in compare_rows(tmp_path).values():
        assert float(r["ci_low"]) < 0 < float(r["ci_high"])
        assert r["verdict"] == "no detectable difference"
    assert "| no detectable difference |" in (tmp_path / "report.md").read_text()


def test_a_config_that_ignores_the_stimulus_is_neither_ranked_nor_compared(tmp_path):
    # c scores best, but no better than twice what it scores with the stimulus shuffled
    for num, (model, best, shuffled) in enumerate([("a", 0.30, -0.2), ("b", 0.40, 0.05), ("c", 0.90, 0.50)]):
        fake_job(tmp_path, num, [f"model={model}", "seed=0"], 0, [(best, 1.5), (best + 0.1, 1.5)], best=best,
                 val_bps_stimulus_shuffled=shuffled)
    main([str(tmp_path), "--compare", "model=a", "model=b", "--compare", "model=a", "model=c"])
    report = (tmp_path / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| `model=")]
    assert [line.split("`")[1] for line in table[:3]] == ["model=b", "model=a", "model=c"]  # c last despite 0.90
    # the health figures beside the verdict: shuffled score, and no RF error where none is recorded
    assert table[2].endswith("| **no: not ranked** | 0.5000 | n/a |") and table[0].endswith("| yes | 0.0500 | n/a |")
    assert "- `model=c`, seed 0: the model is not using the stimulus" in report
    verdicts = {(r["b"], r["level"]): r["verdict"] for r in csv.DictReader((tmp_path / "compare.csv").open())}
    assert verdicts[("model=c", "seeds")] == verdicts[("model=c", "neurons")] == (
        "not compared: B ignores the stimulus (trained score below 2x the stimulus-shuffled one)")
    assert "| `model=a` | `model=c` | seeds | 1 |  |  | not compared: B ignores the stimulus" in report
    assert verdicts[("model=b", "seeds")] == "too few pairs for an interval"  # one seed: no spread
    rows = {r["config"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert rows["model=c"]["uses_stimulus"] == "no" and rows["model=a"]["uses_stimulus"] == "yes"
    assert float(rows["model=a"]["stimulus_shuffled_bps"]) == -0.2


def test_the_seeds_interval_is_the_paired_t_interval_and_the_neurons_one_a_bootstrap_of_the_mean(tmp_path):
    paired_sweep(tmp_path, shift=0.02, seed_noise=0.01, seeds=(0, 1, 2, 3))
    write_report(tmp_path, compare=("model=a", "model=b"))
    rows = compare_rows(tmp_path)
    jobs = {}
    for f in tmp_path.glob("*/metrics.json"):
        model, seed = yaml.safe_load((f.parent / ".hydra" / "overrides.yaml").read_text())
        jobs[(model, seed)] = f
    best = {k: json.loads(f.read_text())["best_val_bps_overall"] for k, f in jobs.items()}
    a = [best[("model=a", f"seed={s}")] for s in range(4)]
    b = [best[("model=b", f"seed={s}")] for s in range(4)]
    expected = stats.ttest_rel(b, a).confidence_interval(0.95)
    assert float(rows["seeds"]["ci_low"]) == pytest.approx(expected.low, abs=1e-12)
    assert float(rows["seeds"]["ci_high"]) == pytest.approx(expected.high, abs=1e-12)
    # the textbook t quantile, 3 degrees of freedom
    d = np.subtract(b, a)
    assert paired_t_interval(d).high == pytest.approx(d.mean() + 3.182446 * d.std(ddof=1) / 2, abs=1e-6)

    per = {k: [float(r["bps"]) for r in csv.DictReader((f.parent / "per_neuron.csv").open())] for k, f in jobs.items()}
    groups = [np.subtract(per[("model=b", f"seed={s}")], per[("model=a", f"seed={s}")]) for s in range(4)]
    flat = np.concatenate(groups)
    assert float(rows["neurons"]["mean_difference"]) == pytest.approx(flat.mean(), abs=1e-12)
    # stratified bootstrap of a mean ~ normal with the within-group variance: half-width 1.96 SE
    se = np.sqrt(sum(g.size * g.var() for g in groups)) / flat.size
    low, high = float(rows["neurons"]["ci_low"]), float(rows["neurons"]["ci_high"])
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.05)
    assert (low + high) / 2 == pytest.approx(flat.mean(), abs=0.1 * se)
    # one group: scipy's percentile bootstrap, its own resamples
    ours = stratified_bootstrap_interval([groups[0]])
    theirs = stats.bootstrap((groups[0],), np.mean, method="percentile", n_resamples=10_000,
                             random_state=1).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.1 * groups[0].std() / np.sqrt(groups[0].size))
    assert ours.high == pytest.approx(theirs.high, abs=0.1 * groups[0].std() / np.sqrt(groups[0].size))
    assert stratified_bootstrap_interval([groups[0]]) == ours  # fixed seed: the same report every time


def test_seeds_sharing_data_pair_by_seed_and_count_each_neuron_once(tmp_path):
    # data pinned (data seed 7), training seeds 0 and 1; b's seed 2 has no partner in a
    for num, (model, seed, shift) in enumerate([("a", 0, 0.0), ("a", 1, 0.0), ("b", 0, 0.1), ("b", 1, 0.3),
                                                ("b", 2, 5.0)]):
        fake_job(tmp_path, num, [f"model={model}", f"seed={seed}"], 7,
                 [(0.1 + shift, 1.5), (0.2 + shift, 1.5), (0.4 + shift, 1.5)], best=0.2 + shift)
    write_report(tmp_path, compare=[("model=a", "model=b")])
    rows = compare_rows(tmp_path)
    assert rows["seeds"]["n_pairs"] == "2" and float(rows["seeds"]["mean_difference"]) == pytest.approx(0.2)
    assert rows["neurons"]["n_pairs"] == "3" and float(rows["neurons"]["mean_difference"]) == pytest.approx(0.2)


def test_the_seeds_metric_is_a_column_and_blank_where_runs_do_not_record_it(tmp_path):
    fake_job(tmp_path, 0, ["model=a", "seed=0"], 0, [(0.1, 1.5)], best=0.1, best_val_bps_neuron_mean_clamped=0.25)
    fake_job(tmp_path, 1, ["model=a", "seed=1"], 1, [(0.1, 1.5)], best=0.1, best_val_bps_neuron_mean_clamped=0.35)
    fake_job(tmp_path, 2, ["model=b", "seed=0"], 0, [(0.1, 1.5)], best=0.2)
    write_report(tmp_path)
    column = "val_bps_neuron_mean_clamped (VisionCore's definition)"
    rows = {r["config"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert float(rows["model=a"][column]) == pytest.approx(0.30) and rows["model=b"][column] == ""
    report = (tmp_path / "report.md").read_text()
    assert column in report and "| `model=b` | 0 | 0.2000 ± 0.0000 |  | 0.200 |" in report


def test_an_override_that_restates_other_jobs_value_does_not_split_their_config(tmp_path):
    # seed 0 ran without data.simulation.seed=0 (its default, since the data seed follows seed);
    # seed 1 was added to the same directory with the data pinned: same configs, same data
    fake_job(tmp_path, 0, ["model=a"], 0, [(0.1, 1.0)], best=0.1)
    fake_job(tmp_path, 1, ["model=b"], 0, [(0.2, 1.0)], best=0.2)
    fake_job(tmp_path, 2, ["data.simulation.seed=0", "seed=1", "model=a"], 0, [(0.3, 1.0)], best=0.3)
    # on other data: this one is a config of its own
    fake_job(tmp_path, 3, ["data.simulation.seed=1", "seed=1", "model=b"], 1, [(0.4, 1.0)], best=0.4)
    write_report(tmp_path)
    rows = {r["config"]: r["seeds"] for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert rows == {"model=a": "0 1", "model=b": "0", "data.simulation.seed=1 model=b": "1"}


# RF size relative to each job's map spacing

def spacing_sweep(sweep):
    """Configs a (4 px map, two seeds on one dataset), b (8 px map) and c (4 px rows, 8 px columns),
    each scoring the same four simulated cells of sigma 0.9, 2, 4 and 5.8 px."""
    sigmas = (0.9, 2.0, 4.0, 5.8)
    jobs = [("a", 0, 0.0, [4, 4], [9, 16]), ("a", 1, 0.2, [4, 4], [9, 16]), ("b", 0, 0.0, [8, 8], [4, 8]),
            ("c", 0, 0.0, [4, 8], [9, 8])]
    for num, (model, seed, shift, spacing, shape) in enumerate(jobs):
        cells = [(0.1 * (i + 1) + shift, s) for i, s in enumerate(sigmas)]
        fake_job(sweep, num, [f"model={model}", f"seed={seed}"], 0, cells, best=0.1,
                 map_spacing_px=spacing, map_shape=shape)


def test_a_neuron_of_sigma_2px_is_in_bin_0_5_1_on_a_4px_map_and_0_25_0_5_on_an_8px_map(tmp_path):
    spacing_sweep(tmp_path)
    write_report(tmp_path)
    rows = {r["config"]: r for r in csv.DictReader((tmp_path / "bps_by_rf_spacing.csv").open())}
    # by hand. a, 4 px: 0.9/4 = 0.225 (< 0.25), 2/4 = 0.5 (0.5-1), 4/4 and 5.8/4 (>= 1); its seeds share
    # the data, so each neuron is the mean of its two seeds (bps 0.1 + 0.1, i.e. 0.2, 0.3, 0.4, 0.5)
    a = rows["model=a"]
    assert [a[f"{b} n"] for b in ("< 0.25", "0.25-0.5", "0.5-1", ">= 1")] == ["1", "0", "1", "2"]
    assert float(a["< 0.25 bps"]) == pytest.approx(0.2) and float(a["0.5-1 bps"]) == pytest.approx(0.3)
    assert float(a[">= 1 bps"]) == pytest.approx(0.45) and a["0.25-0.5 bps"] == "nan"
    # b, 8 px: 0.1125, 0.25 (the lower edge belongs to its bin), 0.5, 0.725
    b = rows["model=b"]
    assert [b[f"{k} n"] for k in ("< 0.25", "0.25-0.5", "0.5-1", ">= 1")] == ["1", "1", "2", "0"]
    assert float(b["0.25-0.5 bps"]) == pytest.approx(0.2) and float(b["0.5-1 bps"]) == pytest.approx(0.35)
    # c, 4 x 8 px: one spacing sqrt(4 * 8) = 5.66 px: 0.16, 0.35, 0.71, 1.03 (the mean 6 px would put
    # 5.8 px below 1, the y spacing alone 2 px at 0.5)
    c = rows["model=c"]
    assert [c[f"{k} n"] for k in ("< 0.25", "0.25-0.5", "0.5-1", ">= 1")] == ["1", "1", "1", "1"]


def test_the_spacing_table_csv_and_png_are_written_with_each_configs_map(tmp_path):
    spacing_sweep(tmp_path)
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "## bps by RF size relative to map spacing" in report
    assert "| config | map_spacing_px | map_shape | < 0.25 | 0.25-0.5 | 0.5-1 | >= 1 |" in report
    assert "| `model=b` | 8x8 | 4x8 | 0.1000 (n=1) | 0.2000 (n=1) | 0.3500 (n=2) | n/a (n=0) |" in report
    assert "| `model=c` | 4x8 | 9x8 |" in report and "Left out" not in report
    assert "![bps by rf size relative to map spacing](bps_by_rf_spacing.png)" in report
    assert (tmp_path / "bps_by_rf_spacing.png").stat().st_size > 0
    assert (tmp_path / "bps_by_rf_size.png").stat().st_size > 0  # the tercile table stays
    assert "## Per-neuron bps by receptive-field size" in report
    main_rows = {r["config"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert (main_rows["model=a"]["map_spacing_px"], main_rows["model=a"]["map_shape"]) == ("4x4", "9x16")
    assert list(csv.DictReader((tmp_path / "bps_by_rf_spacing.csv").open()))[0]["map_spacing_px"] == "4x4"


def resolved_with_convnet(job_dir, overrides):
    """Rewrites the job's config_resolved.yaml as a run before map_spacing_px would have: the
    composed config's convnet on the simulator's frame (36 x 64 by default)."""
    from omegaconf import OmegaConf

    from neuroenc.config.compose import compose_config

    config = yaml.safe_load((job_dir / "config_resolved.yaml").read_text())
    composed = OmegaConf.to_container(compose_config(overrides), resolve=True)
    config["convnet"] = composed["convnet"]
    config["data"]["simulation"].update(height=36, width=64)
    (job_dir / "config_resolved.yaml").write_text(yaml.safe_dump(config))


def test_a_run_recorded_before_the_spacing_gets_it_from_its_resolved_configs_convnet(tmp_path):
    fake_job(tmp_path, 0, ["model=resnet"], 0, [(0.1, 2.0)], best=0.1)
    fake_job(tmp_path, 1, ["model=vivit"], 0, [(0.2, 2.0)], best=0.2)
    resolved_with_convnet(tmp_path / "0_model=resnet", [])
    resolved_with_convnet(tmp_path / "1_model=vivit", ["convnet=vivit", "convnet.tokenizer.stride=[8,8,8]"])
    write_report(tmp_path)
    rows = {r["config"]: r for r in csv.DictReader((tmp_path / "bps_by_rf_spacing.csv").open())}
    # the default ResNet: 36x64 -> 18x32, a cell every 2 px; ViViT's 8x8 tubelets: 4x8, every 8 px
    assert (rows["model=resnet"]["map_spacing_px"], rows["model=resnet"]["map_shape"]) == ("2x2", "18x32")
    assert (rows["model=vivit"]["map_spacing_px"], rows["model=vivit"]["map_shape"]) == ("8x8", "4x8")
    assert rows["model=resnet"][">= 1 n"] == "1" and rows["model=vivit"]["0.25-0.5 n"] == "1"  # 2/2 and 2/8


def test_runs_without_a_recorded_or_computable_spacing_are_named_and_left_out(tmp_path):
    fake_job(tmp_path, 0, ["model=a", "seed=0"], 0, [(0.1, 2.0)], best=0.1, map_spacing_px=[4, 4], map_shape=[9, 16])
    fake_job(tmp_path, 1, ["model=b", "seed=0"], 0, [(0.2, 2.0)], best=0.2)  # no convnet in its config
    fake_job(tmp_path, 2, ["model=c", "seed=0"], 0, [(0.3, 2.0)], best=0.3)
    resolved_with_convnet(tmp_path / "2_model=c,seed=0", [])
    config = yaml.safe_load((tmp_path / "2_model=c,seed=0" / "config_resolved.yaml").read_text())
    config["convnet"]["no_such_argument"] = 1  # a convnet this code cannot build: not guessed
    (tmp_path / "2_model=c,seed=0" / "config_resolved.yaml").write_text(yaml.safe_dump(config))
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert ("Left out (no `map_spacing_px` in metrics.json, and no frame shape and convnet in config_resolved.yaml "
            "to compute it from): `model=b` seed 0 (1_model=b,seed=0), `model=c` seed 0 (2_model=c,seed=0).") in report
    assert [r["config"] for r in csv.DictReader((tmp_path / "bps_by_rf_spacing.csv").open())] == ["model=a"]
    main_rows = {r["config"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert main_rows["model=b"]["map_spacing_px"] == "" and main_rows["model=a"]["map_spacing_px"] == "4x4"


def test_a_training_run_records_its_feature_grid_spacing_resnet_2px_vivit_4x8px(tmp_path):
    from conftest import MICRO_DATA, compose_config

    from neuroenc.training.run import train

    base = [*MICRO_DATA, "frontend.num_channels=2", "frontend.kernel_size=4", "modulator=none", "trainer.max_epochs=1",
            "logger.csv=null", "eval_init=false"]
    vivit = ["convnet=vivit", "convnet.tokenizer.stride=[4,4,8]", "convnet.embedding_dim=8", "convnet.num_heads=2",
             "convnet.ff_dim=16", "convnet.num_spatial_blocks=1", "convnet.num_temporal_blocks=1"]
    recorded = {}
    for num, (name, extra) in enumerate([("resnet", []), ("vivit", vivit)]):
        run_dir = tmp_path / f"{num}_{name}"
        metrics = train(compose_config(base + extra), run_dir)
        recorded[name] = (metrics["map_spacing_px"], metrics["map_shape"])
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={name}"]))
    # by hand, on the 12 x 16 frame: the default ResNet's stride-2 stage -> 6 x 8 cells 2 px apart;
    # 4 x 4 x 8 tubelets (t, y, x) -> 3 x 2 cells, 4 px apart down and 8 px across
    assert recorded == {"resnet": ([2.0, 2.0], [6, 8]), "vivit": ([4.0, 8.0], [3, 2])}
    write_report(tmp_path)
    rows = {r["config"]: r for r in csv.DictReader((tmp_path / "bps_by_rf_spacing.csv").open())}
    assert (rows["model=resnet"]["map_spacing_px"], rows["model=vivit"]["map_spacing_px"]) == ("2x2", "4x8")
    # the fallback for older runs computes the same maps from these runs' resolved configs
    from neuroenc.analysis.report import configured_map, recorded_map
    for num, name in enumerate(recorded):
        run_dir = tmp_path / f"{num}_{name}"
        config = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
        assert configured_map(config) == recorded_map(json.loads((run_dir / "metrics.json").read_text()))


def test_the_rf_error_shows_where_the_readouts_started_and_where_training_left_them(tmp_path):
    fake_job(tmp_path, 0, ["model=a", "seed=0"], 0, [(0.2, 1.0)], best=0.2, init_rf_distance_px_median=0.54,
             rf_distance_px_median=0.79)
    fake_job(tmp_path, 1, ["model=b", "seed=0"], 0, [(0.1, 1.0)], best=0.1, rf_distance_px_median=0.6)  # no start
    main([str(tmp_path)])
    table = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| `model=")]
    assert table[0].endswith("| 0.54 -> 0.79 |") and table[1].endswith("| 0.60 |")
    rows = {r["config"]: r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert float(rows["model=a"]["rf_start_px"]) == 0.54 and rows["model=b"]["rf_start_px"] == ""
