"""``python -m neuroenc.bench data`` generates a dataset, times the loader per worker count, reports
JSON, and removes the dataset afterwards."""

import json

from conftest import run_cli
from neuroenc.bench.__main__ import available, main


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
