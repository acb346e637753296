"""Data: the on-disk session format, the simulated V1, windows and the Lightning datamodule."""
