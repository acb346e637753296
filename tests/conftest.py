"""Shared fixtures: a tiny simulated dataset and config composition as the CLI does it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroenc.config.compose import CONF_DIR as CONF  # noqa: F401  (re-exported for the tests)
from neuroenc.config.compose import compose_config

ROOT = Path(__file__).resolve().parents[1]

# A dataset and model small enough for a test to train in seconds.
TINY_DATA = [
    "data.simulation.num_sessions=2",
    "data.simulation.neurons_min=12",
    "data.simulation.neurons_max=16",
    "data.simulation.trials_train=8",
    "data.simulation.trials_val=2",
    "data.simulation.trials_test=1",
    "data.simulation.trial_frames=120",
    "data.simulation.height=16",
    "data.simulation.width=24",
    "data.window=40",
    "data.burn_in=16",
    "data.batch_size=8",
]
TINY_MODEL = [
    "frontend.kernel_size=8",
    "convnet.stages=[{out_channels:8,kernel_size:[3,3,3],stride:1}]",
    "modulator.hidden_dim=8",
    "modulator.beh_emb_dim=4",
]
# Smaller still, for tests that train several runs (resume, reproducibility, evaluation): 2
# sessions of 6 training trials -> 6 steps per epoch, seconds per epoch on a busy CPU.
MICRO_DATA = [
    "data.simulation.num_sessions=2",
    "data.simulation.neurons_min=8",
    "data.simulation.neurons_max=10",
    "data.simulation.trials_train=6",
    "data.simulation.trials_val=2",
    "data.simulation.trials_test=1",
    "data.simulation.trial_frames=60",
    "data.simulation.height=12",
    "data.simulation.width=16",
    "data.window=24",
    "data.burn_in=8",
    "data.batch_size=8",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
MICRO_MODEL = [
    "frontend.num_channels=2",
    "frontend.kernel_size=4",
    "convnet.stages=[{out_channels:4,kernel_size:[2,3,3],stride:1}]",
    "modulator=none",
]
MICRO = MICRO_DATA + MICRO_MODEL


def tiny_session(path, session_id: str = "mouse1", **over) -> Path:
    """A session of 4 trials of 30 frames (12 x 16 pixels, 5 neurons, trials 0, 1 train, 2 val,
    3 test) and no behaviour columns; ``over`` replaces any argument of ``write_session``."""
    import numpy as np

    from neuroenc.data.sessions import write_session

    rng = np.random.default_rng(0)
    arrays = dict(session_id=session_id, stim=rng.integers(0, 255, (120, 12, 16), dtype=np.uint8),
                  robs=rng.poisson(0.3, (120, 5)).astype(np.float32), trial=np.repeat(np.arange(4), 30),
                  splits={"train": [0, 1], "val": [2], "test": [3]}, frame_rate=30.0)
    return write_session(path, **{**arrays, **over})


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """Every test generates simulated data into one throw-away cache."""
    cache = tmp_path_factory.mktemp("neuroenc-cache")
    old = os.environ.get("NEUROENC_CACHE")
    os.environ["NEUROENC_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("NEUROENC_CACHE", None)
    else:
        os.environ["NEUROENC_CACHE"] = old


def run_cli(args: list[str], cwd: Path, timeout: int = 600, module: str = "neuroenc") -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` in ``cwd`` and capture its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# One trained MICRO run shared by the tests that need a checkpoint (load, evaluate, reproducibility).
MICRO_RUN = [*MICRO, "trainer.max_epochs=2", "optim.lr=0.01", "optim.warmup_steps=2", "seed=2", "logger.csv=null"]


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory, data_cache) -> tuple[Path, dict]:
    """``(run dir, metrics.json content)`` of ``train`` on :data:`MICRO_RUN`, in this process."""
    from neuroenc.training.run import train

    run_dir = tmp_path_factory.mktemp("micro-run")
    return run_dir, train(compose_config(MICRO_RUN), run_dir)
