"""Per-neuron validation bits per spike at the best epoch, written to ``per_neuron.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L

from neuroenc import atomic


class BestPerNeuron(L.Callback):
    """Keeps each neuron's val bps from the epoch with the best ``val_bps_overall``.

    Rows: session, neuron (index in the session), neuron_id, bps, and rf_size where the session's
    meta.json knows it (simulated data does). The report and W&B's per-neuron table read it.
    """

    def __init__(self, path: Path, sessions):
        self.path = Path(path)
        self.sessions = sessions
        self.best = float("-inf")
        self.rows: list[dict] = []

    # in every checkpoint: a resumed run then describes the same epoch as metrics.json's best_epoch
    def state_dict(self) -> dict:
        return {"best": self.best, "rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
        self.rows = list(state["rows"])

    def on_validation_end(self, trainer, pl_module):
        # on_validation_end, not *_epoch_end: the module computes the scores in its epoch-end hook
        scores = pl_module.last_validation
        score = scores and scores.bps.overall
        if trainer.sanity_checking or trainer.state.fn != "fit" or score is None or score <= self.best:
            return
        self.best = score
        rows = []
        for s in self.sessions:
            bps = scores.bps.per_neuron[s.id].tolist()
            neurons = s.meta.get("neurons") or [{}] * s.n_neurons
            ids = s.meta.get("neuron_ids") or list(range(s.n_neurons))
            for j in range(s.n_neurons):
                rows.append({"session": s.id, "neuron": j, "neuron_id": ids[j], "bps": bps[j],
                             "rf_size": neurons[j].get("rf_size", float("nan"))})
        self.rows = rows

    def write(self) -> list[dict]:
        if self.rows:
            with atomic.open_for_write(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(self.rows[0]))
                w.writeheader()
                w.writerows(self.rows)
        return self.rows
