"""The run summary: training step times and validation history, written to ``metrics.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TypedDict, cast

import lightning as L

from neuroenc import atomic
from neuroenc.model.geometry import FeatureGrid
from neuroenc.training.module import per_session_scores


class RunResult(TypedDict, total=False):
    """What ``metrics.json`` holds and ``train`` returns (:meth:`RunSummary.write`). A written
    metrics.json has every key but ``error``; ``total=False`` because DDP ranks > 0 return ``{}``.
    Scores are None where the run has none (no validation, no oracle, not simulated data)."""

    status: str  # "finished", "failed" or "interrupted"
    no_validation: str | None  # why the run never validated (data.allow_no_validation)
    best_val_bps_overall: float | None
    final_val_bps_overall: float | None
    best_epoch: int | None
    best_val_bps_neuron_mean: float | None
    best_val_bps_neuron_mean_clamped: float | None
    val_bps_per_session: dict[str, float] | None
    val_bps_oracle: float | None
    val_oracle_fraction: float | None
    init_val_bps_overall: float | None
    val_bps_stimulus_shuffled: float | None  # the health figures (neuroenc.training.health)
    val_bps_behavior_only: float | None
    rf_distance_px_median: float | None
    epochs: int
    steps: int
    wall_time_s: float
    mean_train_step_s: float | None
    resumed_at_steps: list[int]
    parameters: dict[str, int]
    map_spacing_px: list[float] | None  # (y, x) pixels between the readout map's cells; None without a frame shape
    map_shape: list[int] | None  # (H', W') cells of the map the readouts read
    # the per-frame gaze correction's calibration per session (gain_x, gain_y in pixels per data
    # unit, offset_x, offset_y in pixels); None without the gaze stage
    gaze: dict[str, dict[str, float]] | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    history: list[dict]  # a row per validation: epoch, step and what it logged
    error: str  # a failed or interrupted run's exception


def map_geometry(grid: FeatureGrid | None) -> dict:
    """``map_spacing_px`` (y, x) and ``map_shape`` (H', W') of the map the readouts read."""
    if grid is None:
        return {"map_spacing_px": None, "map_shape": None}
    return {"map_spacing_px": [float(s) for s in grid.step], "map_shape": [int(n) for n in grid.shape]}


class RunSummary(L.Callback):
    """Collects what ``metrics.json`` reports: best/final val bits per spike, step times, sizes.

    Its state (history, initial scores, time and steps so far) goes into every checkpoint, so the
    ``metrics.json`` of a resumed run covers the whole run.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.history: list[dict] = []
        self.step_times: list[float] = []
        self.init_scores: dict | None = None
        self.resumed_at: list[int] = []  # global steps at which the run was resumed
        self._start_noted = False  # whether this process's start is in resumed_at (if it was a resumption)
        self._t0 = 0.0
        self._fit_start = time.perf_counter()
        self._before = {"wall_time_s": 0.0, "step_time_sum": 0.0, "step_count": 0}  # earlier processes

    def state_dict(self) -> dict:
        return {"history": self.history, "init_scores": self.init_scores, "resumed_at": self.resumed_at,
                "wall_time_s": self._wall_time(), "step_time_sum": self._before["step_time_sum"] + sum(self.step_times),
                "step_count": self._before["step_count"] + len(self.step_times)}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state["history"])
        self.init_scores = state["init_scores"]
        self.resumed_at = list(state["resumed_at"])
        self._before = {k: state[k] for k in self._before}

    def on_train_start(self, trainer, pl_module):
        self._note_start(trainer)

    def on_fit_end(self, trainer, pl_module):
        # restored from the checkpoint written at the end of training, Lightning skips the training
        # loop and its on_train_start: nothing was trained, so global_step is still the checkpoint's
        self._note_start(trainer)

    def _note_start(self, trainer) -> None:
        if trainer.ckpt_path is not None and not self._start_noted:
            self.resumed_at.append(trainer.global_step)
        self._start_noted = True

    def _wall_time(self) -> float:
        # not Lightning's Timer: that times the fit's training stage only (not the initial validation or the
        # health scores counted here), and a Timer in the callbacks makes Lightning ignore trainer.max_time
        return self._before["wall_time_s"] + time.perf_counter() - self._fit_start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.step_times.append(time.perf_counter() - self._t0)

    def on_validation_end(self, trainer, pl_module):
        # not on_validation_epoch_end: callbacks run before the module's hook that computes the scores
        scores = pl_module.last_validation
        if trainer.sanity_checking or scores is None:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step, **scores.logged()}
        if trainer.state.fn == "validate":
            self.init_scores = row
        else:
            self.history.append(row)

    def write(self, trainer, module, checkpoint_cb, status: str = "finished", error: str | None = None,
              health: dict | None = None, no_validation: str | None = None) -> RunResult:
        """Write ``metrics.json``; ``health`` (see :mod:`neuroenc.training.health`) goes in beside the scores.

        ``no_validation``: why the data has no validation window, for a run that trained without
        validating (``data.allow_no_validation``); metrics.json then says so in words, beside scores
        that are all null."""
        best = max(self.history, key=lambda r: r["val_bps_overall"]) if self.history else None
        timed_steps = self._before["step_count"] + len(self.step_times)
        final = self.history[-1] if self.history else None
        out: dict = {
            "status": status,
            "no_validation": no_validation and (
                f"this run never validated: {no_validation}; it trained anyway, as data.allow_no_validation=true "
                "asks, so it has no val score and no best checkpoint (last_checkpoint holds its final weights)"),
            "best_val_bps_overall": best and best["val_bps_overall"],
            "final_val_bps_overall": final and final["val_bps_overall"],
            "best_epoch": best and best["epoch"],
            "best_val_bps_neuron_mean": best and best["val_bps_neuron_mean"],
            # VisionCore's definition (neuroenc.metrics.neuron_mean_clamped_bps); .get: histories of
            # runs resumed from checkpoints written before it existed lack it
            "best_val_bps_neuron_mean_clamped": best and best.get("val_bps_neuron_mean_clamped"),
            # rows are what validation logged (from checkpoints too, when resumed): keys, not results
            "val_bps_per_session": best and per_session_scores(best),
            "val_bps_oracle": best and best.get("val_bps_oracle"),
            "val_oracle_fraction": best and best.get("val_oracle_fraction"),
            "init_val_bps_overall": self.init_scores and self.init_scores["val_bps_overall"],
            # where the readouts started (simulated data), beside rf_distance_px_median at the best epoch:
            # whether training moved them towards their cells or away
            "init_rf_distance_px_median": self.init_scores and self.init_scores.get("rf_distance_px_median"),
            **(health or {}),
            "rf_distance_px_median": best and best.get("rf_distance_px_median"),
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "wall_time_s": self._wall_time(),
            "mean_train_step_s": ((self._before["step_time_sum"] + sum(self.step_times)) / timed_steps
                                  if timed_steps else None),
            "resumed_at_steps": self.resumed_at,
            "parameters": module.encoder.parameter_counts(),
            # the report relates receptive-field sizes to it; the run knows it, a sweep's files do not
            **map_geometry(module.encoder.grid),
            # after the health figures, which leave the module holding the best weights
            "gaze": None if module.encoder.gaze is None else module.encoder.gaze.learned(),
            "best_checkpoint": checkpoint_cb.best_model_path or None,
            "last_checkpoint": checkpoint_cb.last_model_path or None,
            "history": self.history,
        }
        if error:
            out["error"] = error
        atomic.write_text(self.path, json.dumps(out, indent=1))  # a kill mid-write leaves the old file
        return cast(RunResult, out)
