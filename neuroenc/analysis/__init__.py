"""Analysis of trained models: one checkpoint (``evaluate``, ``predict``), a sweep (``report``,
with its intervals), a model before training (``inspector``), health figures and plots."""
