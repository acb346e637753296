"""The encoder and its parts: frontend -> convnet (core) -> modulator -> per-session readouts."""
