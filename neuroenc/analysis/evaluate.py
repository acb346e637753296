"""``python -m neuroenc.evaluate checkpoint=<path> [out_dir=DIR] [splits=[val,test]] [accelerator=cpu]``

``checkpoint`` is a ``.ckpt`` file or a run directory (its best checkpoint). Scores it per neuron and plots
what it learned, into ``out_dir`` (default ``<run dir>/evaluation/<checkpoint name>/``):

    neurons.csv            one row per neuron: <split>_bps, <split>_corr, <split>_spikes for each
                           split; where a split shows videos more than once (meta.json
                           trial_stimulus) <split>_corr_to_average, <split>_fev, <split>_oracle_corr
                           and <split>_explainable_var_fraction (neuroenc.metrics.repeat_scores);
                           the readout position in pixels, and on simulated data the true
                           receptive-field centre and size and the distance to it
    summary.json           per split: pooled and per-session bits per spike, their neuron mean
                           and the reference analysis's clamped one (neuroenc.metrics.neuron_mean_clamped_bps),
                           mean correlation, the oracle on simulated data, the neuron means of
                           the repeat scores (and on simulated data those of the repeat-averaged
                           true rates); the val score training logged for these weights;
                           frontend_nyquist_gain, the learned temporal filters' largest gain at
                           Nyquist relative to their peak (0 with anti-aliasing)
    bps_histogram.png      per-neuron bits per spike
    rf_positions.png       readout positions over a stimulus frame, per session
    temporal_filters.png   the learned frontend's temporal filters and their frequency response
    rf_recovery.png        simulated data: recovered vs true receptive-field centres
    shifter.png            with a shifter: the readout shift against the gaze on the val frames,
                           and the shift that follows the gaze (the truth on simulated data);
                           summary.json ``shifter`` holds its slope per axis and, with the gaze in
                           pixels (data.eye_px_per_unit), the RMS distance from that shift

Bits per spike come from the training validation path itself (``EncoderModule.validation_step``
under a Lightning Trainer with the training precision, on the same windows and batches), so the
val score equals what training logged for that checkpoint on the same kind of device.
Correlation is :class:`neuroenc.metrics.Correlation` on the same predictions.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import cast

import hydra
import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from neuroenc import atomic
from neuroenc.analysis import plots
from neuroenc.config.compose import CONF_DIR
from neuroenc.config.schema import register
from neuroenc.data.repeats import session_repeat_scores
from neuroenc.data.windows import Batch
from neuroenc.metrics import REPEAT_SCORES, Correlation, end_to_end
from neuroenc.trained import load
from neuroenc.training.health import readout_centers_px, shifter_response, shifter_summary
from neuroenc.training.module import EncoderModule

register()


def best_checkpoint(run_dir: Path) -> Path:
    """A run directory's best checkpoint by val_bps_overall (as its metrics.json names it)."""
    metrics = Path(run_dir) / "metrics.json"
    recorded = json.loads(metrics.read_text()) if metrics.exists() else {}
    best = recorded.get("best_checkpoint")
    if best is None:
        found = sorted((Path(run_dir) / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            why = (" (its metrics.json: it never validated, so no checkpoint is best; give "
                   f"checkpoint={Path(run_dir) / 'checkpoints' / 'last.ckpt'})" if recorded.get("no_validation") else "")
            raise FileNotFoundError(f"checkpoint: {str(run_dir)!r} is a directory without a best checkpoint "
                                    f"(checkpoints/best-*.ckpt){why}")
        best = found[-1]
    return Path(best)


def default_out_dir(checkpoint: Path) -> Path:
    checkpoint = Path(checkpoint).resolve()
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run / "evaluation" / checkpoint.stem


def example_frame(session) -> np.ndarray:
    """The first validation frame of a session (its first frame when it has no val split)."""
    frames = session.split_frames("val")
    return np.asarray(session.stim[int(frames[0]) if len(frames) else 0], dtype=np.float32)


class CorrelationScores(L.Callback):
    """Per-neuron correlation of the rates ``validation_step`` returns, over one validation run."""

    def __init__(self, session_sizes: dict[str, int]):
        self.metric = Correlation(session_sizes)

    def on_validation_start(self, trainer, pl_module):
        self.metric = self.metric.to(pl_module.device)
        self.metric.reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch: Batch, batch_idx, dataloader_idx=0):
        self.metric.update(pl_module.session_of(batch), outputs, batch["robs"], batch["mask"])


def neuron_columns(sessions) -> dict[str, list]:
    """The identifying columns of neurons.csv: session, index in the session, neuron id."""
    columns: dict[str, list] = {"session": [], "neuron": [], "neuron_id": []}
    for session in sessions:
        columns["session"] += [session.id] * session.n_neurons
        columns["neuron"] += list(range(session.n_neurons))
        columns["neuron_id"] += list(session.meta.get("neuron_ids", range(session.n_neurons)))
    return columns


def score_split(trainer: L.Trainer, module: EncoderModule, correlation: CorrelationScores, loader,
                split: str) -> tuple[dict[str, list], dict]:
    """Per-neuron columns and pooled scores of one split, through the training validation path."""
    trainer.validate(module, dataloaders=loader, verbose=False)
    scores = module.last_validation
    assert scores is not None  # validate() has just set it
    corr = correlation.metric.compute().cpu().numpy()
    columns = {f"{split}_bps": end_to_end(scores.bps.per_neuron).tolist(), f"{split}_corr": corr.tolist(),
               f"{split}_spikes": end_to_end(scores.bps.spikes).tolist()}
    pooled = {
        "bps_overall": scores.bps.overall,
        "bps_neuron_mean": scores.bps.neuron_mean,
        "bps_neuron_mean_clamped": scores.bps.neuron_mean_clamped,  # VisionCore's definition
        "bps_per_session": dict(scores.bps.per_session),
        "corr_neuron_mean": float(np.nanmean(corr)) if np.isfinite(corr).any() else None,
        "bps_oracle": scores.oracle,
        "oracle_fraction": scores.oracle_fraction,
    }
    return columns, pooled


def score_repeats(model, sessions, split: str) -> tuple[dict[str, list], dict | None]:
    """Per-neuron repeat scores of ``split`` (:func:`neuroenc.data.repeats.session_repeat_scores` on the
    model's rates for the raw recording, which equal the ones validation scores) and their neuron
    means; no columns and None when no session repeats a video in it. Neurons of sessions without
    repeats get NaN."""
    per_session = [session_repeat_scores(s, split, lambda stim, beh, s=s: model.predict(stim, beh, s.id))
                   for s in sessions]
    if all(r is None for r in per_session):
        return {}, None
    columns: dict[str, list] = {f"{split}_{k}": [] for k in REPEAT_SCORES}
    truth: dict[str, list] = {k: [] for k in REPEAT_SCORES}
    for s, r in zip(sessions, per_session):
        for k in REPEAT_SCORES:
            columns[f"{split}_{k}"] += r["scores"][k].tolist() if r else [math.nan] * s.n_neurons
            if r and "true_rates" in r:
                truth[k] += r["true_rates"][k].tolist()
    mean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else None
    pooled = {"videos": sum(r["videos"] for r in per_session if r), "trials": sum(r["trials"] for r in per_session if r),
              **{f"{k}_neuron_mean": mean(np.array(columns[f"{split}_{k}"])) for k in REPEAT_SCORES}}
    if any(truth.values()):  # simulated data: the repeat-averaged true rates as the prediction
        pooled["true_rates"] = {f"{k}_neuron_mean": mean(np.array(truth[k])) for k in ("corr_to_average", "fev")}
    return columns, pooled


def receptive_fields(model, info, sessions) -> tuple[dict[str, list], dict | None]:
    """Readout positions in pixels and, where meta.json knows them (simulated data), the true
    receptive-field centres and sizes and the distance to them; plus a summary of that distance."""
    positions = [readout_centers_px(model, s, info.behavior_dim) for s in info.session_ids]
    if any(p is None for p in positions):
        return {}, None
    xy = np.concatenate([p.numpy() for p in positions])  # type: ignore[union-attr]  # no None, checked above
    columns = {"rf_x_px": xy[:, 0].tolist(), "rf_y_px": xy[:, 1].tolist()}
    truth = [session.meta.get("neurons") for session in sessions]
    if any(t is None for t in truth):
        return columns, None
    true = np.array([(n["x"], n["y"], n["rf_size"]) for t in truth for n in t], dtype=float)
    err = np.hypot(xy[:, 0] - true[:, 0], xy[:, 1] - true[:, 1])
    columns.update(true_x_px=true[:, 0].tolist(), true_y_px=true[:, 1].tolist(),
                   true_rf_size_px=true[:, 2].tolist(), rf_error_px=err.tolist())
    return columns, {"median_error_px": float(np.median(err)), "within_rf_size": float(np.mean(err <= true[:, 2])),
                     "frame_shape": list(info.frame_shape)}


def evaluate(checkpoint, out_dir=None, splits=("val", "test"), accelerator: str = "auto",
             data_root: str | None = None) -> dict:
    """Write the files listed in the module docstring; returns the content of summary.json."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():  # a run directory: its best checkpoint
        checkpoint = best_checkpoint(checkpoint)
    unknown = [s for s in splits if s not in ("val", "test")]
    if unknown:
        raise ValueError(f"splits: {unknown} are not among 'val', 'test'")
    out = Path(out_dir) if out_dir else default_out_dir(checkpoint)
    model = load(checkpoint)
    cfg = model.config
    dm = model.open_data(data_root=data_root)
    info = dm.info
    empty = [s for s in splits if not len(dm.windows[s])]
    if empty:
        rest = [s for s in splits if s not in empty]
        raise ValueError(f"splits: no session under {str(dm.data_root())!r} has a window of data.window={dm.window} "
                         f"frames in {empty} (meta.json splits); "
                         + (f"evaluate the others: splits=[{','.join(rest)}]" if rest else "there is nothing to score"))
    module = EncoderModule(model.encoder, info.n_neurons, cast(dict, OmegaConf.to_container(cfg.optim)),
                           has_oracle=info.has_oracle, config=cast(dict, OmegaConf.to_container(cfg)), seed=cfg.seed)
    correlation = CorrelationScores(info.n_neurons)
    # the training precision: the val score then equals the logged one on the same kind of device
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=cfg.trainer.precision, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, callbacks=[correlation])

    columns = neuron_columns(dm.sessions)
    summary: dict = {"checkpoint": str(checkpoint.resolve()), "epoch": model.checkpoint["epoch"],
                     "global_step": model.checkpoint["global_step"], "splits": {}}
    loaders = {"val": dm.val_dataloader, "test": dm.test_dataloader}
    for split in splits:
        split_columns, summary["splits"][split] = score_split(trainer, module, correlation, loaders[split](), split)
        columns.update(split_columns)
    logged = model.checkpoint["val_scores"]
    summary["logged_val_bps_overall"] = logged and logged["val_bps_overall"]
    if logged and "val" in summary["splits"]:
        summary["val_bps_overall_minus_logged"] = summary["splits"]["val"]["bps_overall"] - logged["val_bps_overall"]
    for split in splits:
        repeat_columns, summary["splits"][split]["repeats"] = score_repeats(model.eval(), dm.sessions, split)
        columns.update(repeat_columns)
    rf_columns, summary["rf_recovery"] = receptive_fields(model.encoder, info, dm.sessions)
    nyquist_gain = getattr(model.frontend, "nyquist_gain", None)
    summary["frontend_nyquist_gain"] = nyquist_gain() if nyquist_gain else None
    columns.update(rf_columns)
    eye_px = cfg.data.get("eye_px_per_unit")
    shifts = shifter_response(model.encoder, dm.sessions, "val", eye_px)
    summary["shifter"] = shifter_summary(shifts, eye_px) if shifts else None
    summary["gaze"] = None if model.encoder.gaze is None else model.encoder.gaze.learned()

    out.mkdir(parents=True, exist_ok=True)
    with atomic.open_for_write(out / "neurons.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values()))
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=1))
    plots.bps_histogram(columns, splits, out / "bps_histogram.png")
    if "rf_x_px" in columns:
        plots.rf_positions(columns, info.session_ids, [example_frame(s) for s in dm.sessions],
                           out / "rf_positions.png")
    plots.temporal_filters(model.frontend, dm.sessions[0].frame_rate, out / "temporal_filters.png")
    if "true_x_px" in columns:
        plots.rf_recovery(columns, info.frame_shape, out / "rf_recovery.png")
    if shifts:
        plots.shifter(shifts, summary["shifter"], out / "shifter.png")
    summary["out_dir"] = str(out)
    report(summary)
    return summary


def report(summary: dict) -> None:
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"
    table = Table(title=f"evaluation of {Path(summary['checkpoint']).name} (step {summary['global_step']})")
    table.add_column("split")
    for c in ("bits/spike", "neuron mean", "VisionCore's (clamped)", "mean corr", "oracle"):
        table.add_column(c, justify="right")
    for split, s in summary["splits"].items():
        table.add_row(split, fmt(s["bps_overall"]), fmt(s["bps_neuron_mean"]), fmt(s["bps_neuron_mean_clamped"]),
                      fmt(s["corr_neuron_mean"]), fmt(s["bps_oracle"]))
    console = Console()
    console.print(table)
    for split, s in summary["splits"].items():
        r = s.get("repeats")
        if r:
            truth = r.get("true_rates") or {}
            console.print(f"{split}: {r['videos']} repeated videos in {r['trials']} trials; per-neuron means: "
                          f"correlation to average {fmt(r['corr_to_average_neuron_mean'])}, FEV "
                          f"{fmt(r['fev_neuron_mean'])}, oracle correlation {fmt(r['oracle_corr_neuron_mean'])}"
                          + (f" (true rates: correlation to average {fmt(truth['corr_to_average_neuron_mean'])}, "
                             f"FEV {fmt(truth['fev_neuron_mean'])})" if truth else ""))
    if summary.get("logged_val_bps_overall") is not None:
        console.print(f"val bits/spike logged in training: {summary['logged_val_bps_overall']:.6f} "
                      f"(difference {summary.get('val_bps_overall_minus_logged', float('nan')):.2e})")
    if summary.get("rf_recovery"):
        r = summary["rf_recovery"]
        console.print(f"receptive-field centres: median error {r['median_error_px']:.2f} px, "
                      f"{100 * r['within_rf_size']:.0f}% within the true RF size")
    if summary.get("frontend_nyquist_gain") is not None:
        console.print(f"frontend temporal filters: gain at Nyquist at most {summary['frontend_nyquist_gain']:.2g} "
                      "of their peak (temporal_filters.png)")
    sh = summary.get("shifter")
    if sh:
        unit = "px of gaze" if sh["gaze_in_px"] else "unit of gaze"
        off = f"; {sh['rms_error_px']:.2f} px (rms) from the gaze" if sh["rms_error_px"] is not None else ""
        console.print(f"shifter: readouts move {sh['slope_x']:.2f} (x) and {sh['slope_y']:.2f} (y) px per {unit}"
                      f"{off} (shifter.png)")
    console.print(f"written to {summary['out_dir']}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg.checkpoint, cfg.out_dir, list(cfg.splits), cfg.accelerator, cfg.data_root)


if __name__ == "__main__":
    main()
