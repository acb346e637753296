"""The LightningModule: Poisson loss, AdamW with warmup + cosine decay, bits-per-spike logging."""

from __future__ import annotations

import math

import lightning as L
import torch

from neuroenc.metrics import BitsPerSpike
from neuroenc.model.encoder import Encoder


def poisson_loss(rates: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean Poisson negative log-likelihood (without log y!) over the masked bins of ``(B, T, N)``."""
    m = mask.to(rates.dtype)
    nll = rates - counts * torch.log(rates.clamp(min=1e-8))
    return (nll * m).sum() / m.sum().clamp(min=1)


class EncoderModule(L.LightningModule):
    """Trains an :class:`Encoder`; a batch holds windows of one session (``batch["session"]``)."""

    def __init__(self, encoder: Encoder, n_neurons: dict[str, int], optim: dict, has_oracle: bool = False,
                 config: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.session_ids = list(n_neurons)
        self.optim = dict(optim)
        self.config = config
        self.val_bps = BitsPerSpike(n_neurons)
        self.val_oracle = BitsPerSpike(n_neurons) if has_oracle else None
        self.last_val: dict[str, float] = {}
        self.last_val_per_neuron: torch.Tensor | None = None

    def forward(self, batch: dict) -> torch.Tensor:
        return self.encoder(batch["stim"], batch["behavior"], self._session(batch))

    def _session(self, batch: dict) -> str:
        return self.session_ids[int(batch["session"][0])]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rates = self(batch)
        loss = poisson_loss(rates, batch["robs"], batch["mask"])
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["stim"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        session = self._session(batch)
        rates = self(batch)
        self.val_bps.update(session, rates, batch["robs"], batch["mask"])
        if self.val_oracle is not None:
            self.val_oracle.update(session, batch["rates"], batch["robs"], batch["mask"])

    def on_validation_epoch_end(self) -> None:
        scores = {f"val_bps_{k}" if "/" not in k else f"val_bps/{k.split('/', 1)[1]}": v
                  for k, v in self.val_bps.compute().items()}
        self.last_val_per_neuron = self.val_bps.per_neuron().cpu()
        if self.val_oracle is not None:
            oracle = self.val_oracle.compute()["overall"]
            scores["val_bps_oracle"] = oracle
            scores["val_oracle_fraction"] = scores["val_bps_overall"] / oracle
            self.val_oracle.reset()
        self.val_bps.reset()
        self.last_val = {k: float(v) for k, v in scores.items()}
        # already reduced across ranks by torchmetrics: no further sync
        overall = scores.pop("val_bps_overall")
        self.log("val_bps_overall", overall.float(), prog_bar=True)
        self.log_dict({k: v.float() for k, v in scores.items()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.optim["lr"], weight_decay=self.optim["weight_decay"])
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(int(self.optim["warmup_steps"]), total)
        floor = float(self.optim["min_lr_ratio"])

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["neuroenc"] = {"config": self.config, "session_ids": self.session_ids}
