"""The same config and seed give the same numbers, and a run records what it ran with."""

import json
import subprocess

import torch
from conftest import MICRO_RUN, ROOT, compose_config
from omegaconf import OmegaConf

from neuroenc.training.run import train


def test_same_config_and_seed_give_identical_val_bps_on_cpu(micro_run, tmp_path):
    first_dir, first = micro_run
    second = train(compose_config(MICRO_RUN), tmp_path / "again")
    print(f"val_bps_overall per epoch: {[r['val_bps_overall'] for r in first['history']]} and "
          f"{[r['val_bps_overall'] for r in second['history']]}")
    assert second["best_val_bps_overall"] == first["best_val_bps_overall"]
    assert second["history"] == first["history"] and second["init_val_bps_overall"] == first["init_val_bps_overall"]
    a = torch.load(first_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "again" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_records_resolved_config_package_versions_and_git_commit(micro_run):
    run_dir, metrics = micro_run
    env = json.loads((run_dir / "environment.json").read_text())
    assert torch.__version__.startswith(env["packages"]["torch"])
    assert env["packages"]["lightning"] and env["packages"]["neuroenc"] and env["python"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert env["git"]["commit"] == head.stdout.strip() and isinstance(env["git"]["dirty"], bool)
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=False)["neuroenc"]
    resolved = OmegaConf.to_container(compose_config(MICRO_RUN), resolve=True)
    assert ckpt["config"] == resolved == OmegaConf.to_container(OmegaConf.load(run_dir / "config_resolved.yaml"))
    assert ckpt["environment"]["git"] == env["git"] and ckpt["environment"]["packages"] == env["packages"]
