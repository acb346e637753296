"""Training: a run (``python -m neuroenc``) built from its config, the LightningModule and its
metrics, callbacks, checkpoints and resuming, loggers, and the DDP-in-multirun plumbing."""
