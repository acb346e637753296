"""The end-of-job W&B summary carries the best epoch's scores, the reference analysis's clamped figure included."""

from types import SimpleNamespace

from lightning.pytorch.loggers import WandbLogger

from neuroenc.training.loggers import finish_loggers


class RecordingWandbLogger(WandbLogger):
    """A WandbLogger without a W&B run: its ``experiment`` only records the summary."""

    def __init__(self):
        self.run = SimpleNamespace(summary={})

    @property
    def experiment(self):
        return self.run


def test_wandb_summary_has_best_val_bps_and_the_seeds_clamped_figure():
    logger = RecordingWandbLogger()
    result = {"status": "finished", "best_val_bps_overall": 0.31, "best_val_bps_neuron_mean_clamped": 0.42,
              "val_bps_stimulus_shuffled": 0.05}
    finish_loggers([logger], result, per_neuron=[])
    assert logger.run.summary == {"val_bps_overall": 0.31, "val_bps_neuron_mean_clamped": 0.42,
                                  "status": "finished", "val_bps_stimulus_shuffled": 0.05}
