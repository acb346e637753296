"""The LightningModule: Poisson loss, AdamW with warmup + cosine decay, bits-per-spike logging."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import lightning as L
import numpy as np
import torch

from neuroenc.config.schema import OptimConfig
from neuroenc.data.windows import Batch
from neuroenc.metrics import BitsPerSpike, BitsPerSpikeResult, poisson_loss
from neuroenc.model.encoder import Encoder
from neuroenc.training.health import rf_distances_px

SESSION_PREFIX = "val_bps/"


def session_key(session: str) -> str:
    """The log key of a session's pooled val bits per spike (W&B, metrics.json history)."""
    return SESSION_PREFIX + session


def per_session_scores(logged: Mapping[str, float]) -> dict[str, float]:
    """The inverse of :func:`session_key` over a row of logged scores: ``{session: bps}``."""
    return {k[len(SESSION_PREFIX):]: v for k, v in logged.items() if k.startswith(SESSION_PREFIX)}


@dataclass(frozen=True)
class ValidationScores:
    """What one validation of :class:`EncoderModule` gave (``EncoderModule.last_validation``)."""

    step: int  # global step of the weights scored
    bps: BitsPerSpikeResult
    oracle: float | None = None  # pooled bits per spike of the true rates (simulated data)
    rf_distance_px_median: float | None = None  # readout centre to true RF centre (simulated data)

    @property
    def oracle_fraction(self) -> float | None:
        """``bps.overall / oracle``."""
        if self.oracle is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):  # IEEE, as the tensors divided before
            return float(np.float64(self.bps.overall) / np.float64(self.oracle))

    def logged(self) -> dict[str, float]:
        """The scores under the keys they are logged with: the one place those keys are built.
        W&B charts, metrics.json's history and checkpoints' ``val_scores`` hold these rows."""
        out = {"val_bps_overall": self.bps.overall, "val_bps_neuron_mean": self.bps.neuron_mean,
               "val_bps_neuron_mean_clamped": self.bps.neuron_mean_clamped,
               **{session_key(s): v for s, v in self.bps.per_session.items()}}
        if self.oracle is not None:
            out.update(val_bps_oracle=self.oracle, val_oracle_fraction=cast(float, self.oracle_fraction))  # an oracle has one
        if self.rf_distance_px_median is not None:
            out["rf_distance_px_median"] = self.rf_distance_px_median
        return out


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient; the message names step and session."""


class EncoderModule(L.LightningModule):
    """Trains an :class:`Encoder`; a batch holds windows of one session (``batch["session"]``).

    Training randomness (readout position noise, dropout) is drawn from torch's generator seeded
    by ``(seed, rank, epoch, batch)`` at every batch, so a run resumed from a checkpoint draws the
    same numbers as one that never stopped. A non-finite loss or gradient stops training with
    :class:`NonFiniteLossError` before the optimizer step, so no checkpoint holds its effect.
    ``config`` and ``data_info`` go into every checkpoint: :func:`neuroenc.load` rebuilds the model
    from them. After each validation, :attr:`last_validation` holds its scores; callbacks and
    :mod:`neuroenc.analysis.evaluate` read them there.
    """

    def __init__(self, encoder: Encoder, n_neurons: dict[str, int], optim: Mapping, has_oracle: bool = False,
                 config: dict | None = None, data_info: dict | None = None, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        self.session_ids = list(n_neurons)
        self.optim = OptimConfig(**optim)  # the config's optim.*, read as typed attributes
        self.config = config
        self.data_info = data_info
        self.seed = int(seed)
        self.environment: dict | None = None  # set by train(); stored in checkpoints
        self._batch: tuple[str, int] = ("", -1)  # session and index of the batch being trained
        self.val_bps = BitsPerSpike(n_neurons)
        self.val_oracle = BitsPerSpike(n_neurons) if has_oracle else None
        self.last_validation: ValidationScores | None = None  # the latest validation's scores
        # simulated data: true receptive-field centres, for rf_distance_px_median at every validation
        self.true_rf_centers = (data_info or {}).get("true_rf_centers")

    def forward(self, batch: Batch) -> torch.Tensor:
        # float32 rates whatever the autocast precision: the loss and bits per spike take their log
        return self.encoder(batch["stim"], batch["behavior"], self.session_of(batch)).float()

    def session_of(self, batch: Batch) -> str:
        """The id of the session a batch's windows come from (a batch holds one session)."""
        return self.session_ids[int(batch["session"][0])]

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        key = [self.seed, self.global_rank, self.current_epoch, batch_idx]
        torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0]))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        rates = self(batch)
        loss = poisson_loss(rates, batch["robs"], batch["mask"])
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss ({loss.item()}) "
                                     f"{self._where(self.session_of(batch), batch_idx)}")
        self._batch = (self.session_of(batch), batch_idx)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["stim"].shape[0])
        return loss

    def _where(self, session: str, batch_idx: int) -> str:
        return (f"at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx}) in session "
                f"{session!r}; training stopped, no checkpoint was written after the last good step")

    def on_before_optimizer_step(self, optimizer) -> None:
        # with fp16 a GradScaler skips steps with inf gradients by design; otherwise they would
        # turn every weight into NaN at this step
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or torch.stack([torch.isfinite(g).all() for g in grads]).all():  # one device sync
            return
        bad = [n for n, p in self.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            session, batch_idx = self._batch
            raise NonFiniteLossError(f"non-finite gradient of {bad[:5]}{' ...' if len(bad) > 5 else ''} "
                                     f"{self._where(session, batch_idx)}")

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        session = self.session_of(batch)
        rates = self(batch)
        self.val_bps.update(session, rates, batch["robs"], batch["mask"])
        if self.val_oracle is not None:
            self.val_oracle.update(session, batch["rates"], batch["robs"], batch["mask"])
        return rates  # for callbacks that score more than bits per spike (neuroenc.analysis.evaluate)

    def on_validation_epoch_end(self) -> None:
        # result() scores the sums of all ranks (per neuron too): every rank gets the same scores
        bps = self.val_bps.result()
        self.val_bps.reset()
        oracle = None
        if self.val_oracle is not None:
            oracle = self.val_oracle.result().overall
            self.val_oracle.reset()
        rf_distance = None
        if self.true_rf_centers is not None:
            assert self.data_info is not None  # the centres come from it
            distances = rf_distances_px(self.encoder, self.true_rf_centers, self.data_info["behavior_dim"])
            if distances is not None:
                rf_distance = float(np.median(distances))
        self.last_validation = ValidationScores(self.global_step, bps, oracle, rf_distance)
        scores = self.last_validation.logged()
        # already reduced across ranks by torchmetrics: no further sync
        self.log("val_bps_overall", scores.pop("val_bps_overall"), prog_bar=True)
        self.log_dict(scores)

    def configure_optimizers(self):
        # readout positions start at their cells (estimated from the data) and need fine moves only:
        # Adam moves every parameter by about lr per step whatever its gradient, which at the
        # network's lr would walk a position off its cell within an epoch
        positions = [p for n, p in self.encoder.readouts.named_parameters() if n.rsplit(".", 1)[-1] in ("mean", "log_std")]
        # the gaze calibration's gain starts at the data's pixels per unit, and decay would pull it to no shift
        calibration = [] if self.encoder.gaze is None else list(self.encoder.gaze.parameters())
        ids = {id(p) for p in positions + calibration}
        groups: list[dict[str, Any]] = [{"params": [p for p in self.parameters() if id(p) not in ids]},
                  {"params": positions, "lr": self.optim.lr * self.optim.position_lr_ratio}]
        if calibration:
            groups.append({"params": calibration, "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.optim.warmup_steps, total)
        floor = self.optim.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        # not SequentialLR(LinearLR, CosineAnnealingLR): its one eta_min cannot floor each group at its own
        # lr * min_lr_ratio, and its recursive updates round differently from this closed form
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["neuroenc"] = {
            "config": self.config,
            "session_ids": self.session_ids,
            "data_info": self.data_info,
            "environment": self.environment,
            # what validation gave for these weights (None when they moved on since, mid-epoch)
            "val_scores": (self.last_validation.logged()
                           if self.last_validation is not None and self.last_validation.step == self.global_step
                           else None),
        }
