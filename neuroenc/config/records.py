"""Parameter records that a config schema and the class it configures share.

The simulator (:mod:`neuroenc.data.synthetic`) takes a :class:`SimulationParams` and the ResNet
(:mod:`neuroenc.model.convnet.resnet`) a list of :class:`StageSpec`; the schemas
``SimulationConfig`` and ``StageConfig`` (:mod:`neuroenc.config.schema`) extend them. They live in
the config layer, below data and model, so that composing a config imports neither (nor torch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import List

# the simulator's stimulus classes (neuroenc.data.stimuli), named here so that configs are checked without it
STIMULUS_CLASSES = ("pink_noise", "gabor_noise", "gratings", "flashed_images")
DEFAULT_STIMULI = ["pink_noise"]


@dataclass
class SimulationParams:
    """The simulated V1's parameters and their defaults (mouse V1 at 30 Hz); the config's
    ``data.simulation`` (``neuroenc.config.schema.SimulationConfig``) is these, seeded by the run's seed."""

    seed: int = 0
    num_sessions: int = 3
    neurons_min: int = 40
    neurons_max: int = 80
    trials_train: int = 36  # 6 minutes of training per session (real recordings hold far more)
    trials_val: int = 3
    trials_test: int = 3
    trial_frames: int = 300  # frames per trial: the recording's layout, in frames like data.window
    height: int = 36
    width: int = 64
    frame_rate: float = 30.0  # Hz
    # duration of the true temporal kernels; their lobes scale with it (the first peaks at 1/8 to
    # 1/4 of it, the rebound 1/6 to 1/3 of it later): 400 ms is mouse V1's slow biphasic response
    kernel_ms: float = 400.0
    rf_sigma_min_px: float = 0.7  # Gabor envelope std, log-uniform in [min, max] (max capped at a sixth of the frame)
    rf_sigma_max_px: float = 4.0
    # mouse V1 prefers low spatial frequencies: no wavelength below 4 px, even for tiny RFs
    min_wavelength_px: float = 4.0
    rate_min_hz: float = 1.5  # each neuron's mean firing rate, log-uniform in [min, max]
    rate_max_hz: float = 15.0
    max_eye_shift: int = 1  # pixels; the eye position is rounded to whole pixels and clipped to +-this
    eye_drift_px: float = 0.5  # std of the eye's slow drift (an Ornstein-Uhlenbeck process) ...
    eye_tau_s: float = 1.0  # ... and its time constant
    microsaccade_rate_hz: float = 0.0  # fixational jumps (primates); 0: none
    microsaccade_px: float = 0.0  # their mean amplitude (each drawn within +-50% of it)
    complex_fraction: float = 0.4
    invalid_fraction: float = 0.005  # bins marked invalid in dfs, so masking is always exercised
    # presentations of each val and test movie (1: each shown once). Above 1 every repeat is a
    # trial of its own, with its own eye movements, behaviour and spikes, and meta.json records
    # which trials show which movie (trial_stimulus), as Sensorium's oracle tier does
    repeats: int = 1
    # the mix of stimulus classes: each class named shows in an equal share of the movies (a class
    # named twice, twice the share), as near as whole movies allow, and every mix but the default
    # records each trial's class in meta.json (trial_class). A list, not {class: weight}: an
    # override replaces a list, but would merge into a mapping (data.simulation.stimuli=[gratings,pink_noise])
    stimuli: List[str] = field(default_factory=lambda: list(DEFAULT_STIMULI))

    def __post_init__(self):
        def need(ok: bool, key: str, problem: str) -> None:
            if not ok:
                raise ValueError(f"{key}: {problem}")

        for key in ("num_sessions", "neurons_min", "trials_train", "trial_frames", "height", "width"):
            need(getattr(self, key) > 0, key, f"{getattr(self, key)}; must be positive")
        for key in ("trials_val", "trials_test", "max_eye_shift"):
            need(getattr(self, key) >= 0, key, f"{getattr(self, key)}; must not be negative")
        need(self.neurons_min <= self.neurons_max, "neurons_min", f"{self.neurons_min} > neurons_max={self.neurons_max}")
        need(self.repeats >= 1, "repeats", f"{self.repeats}; a movie is shown at least once")
        need(self.frame_rate > 0, "frame_rate", f"{self.frame_rate}; must be positive")
        need(self.kernel_taps >= 2, "kernel_ms", f"{self.kernel_ms} ms is {self.kernel_taps} frame(s) at "
                                                 f"{self.frame_rate} Hz; a biphasic kernel needs at least 2")
        need(0 < self.rf_sigma_min_px <= self.rf_sigma_max_px, "rf_sigma_min_px",
             f"{self.rf_sigma_min_px}; must be positive and at most rf_sigma_max_px={self.rf_sigma_max_px}")
        need(0 < self.rate_min_hz <= self.rate_max_hz, "rate_min_hz",
             f"{self.rate_min_hz}; must be positive and at most rate_max_hz={self.rate_max_hz}")
        need(self.eye_tau_s > 0, "eye_tau_s", f"{self.eye_tau_s}; must be positive")
        need(self.microsaccade_rate_hz >= 0, "microsaccade_rate_hz", f"{self.microsaccade_rate_hz}; must not be negative")
        need(self.microsaccade_rate_hz == 0 or self.microsaccade_px > 0, "microsaccade_px",
             f"{self.microsaccade_px}; microsaccades (microsaccade_rate_hz={self.microsaccade_rate_hz}) need a "
             "positive amplitude")
        self.stimuli = [str(c) for c in self.stimuli]  # a config's ListConfig, too
        unknown = sorted(set(self.stimuli) - set(STIMULUS_CLASSES))
        need(not unknown, "stimuli", f"unknown classes {unknown}; the classes are {list(STIMULUS_CLASSES)}")
        need(bool(self.stimuli), "stimuli", "[]; name at least one class")

    def frames(self, ms) -> float:
        """``ms`` milliseconds in frames at ``frame_rate``, exact rational arithmetic rounded once."""
        return float(Fraction(ms) * Fraction(self.frame_rate) / 1000)

    @property
    def kernel_taps(self) -> int:
        return round(self.frames(self.kernel_ms))

    def described(self) -> dict:
        """The parameters, ``repeats`` only when movies repeat and ``stimuli`` only when it is not
        the default: the default data keep the cache key and meta.json they had before either existed."""
        params = asdict(self)
        if params["repeats"] == 1:
            del params["repeats"]
        if params["stimuli"] == DEFAULT_STIMULI:
            del params["stimuli"]
        return params


@dataclass
class StageSpec:
    """One :class:`ResidualStage` of a :class:`ResNet`; the config's ``convnet.stages`` entries
    (``neuroenc.config.schema.StageConfig``) are these."""

    out_channels: int
    kernel_size: List[int] = field(default_factory=lambda: [3, 3, 3])  # (t, h, w)
    stride: int = 1  # spatial
    dilation: int = 1  # spatial
    pool: str = "none"  # or "aablur": blur, then subsample by `stride`
    dropout: float = 0.0
    temporal_stride: int = 1  # keep every s-th frame (causal); the modulator then runs at that rate
    temporal_dilation: int = 1  # time taps this many of the stage's steps apart
    convs: int = 2  # convolutions on the main path: 2, or 1 as in VisionCore's ResNet

    def check(self) -> None:
        """Fails naming the field of an impossible value."""
        for name in ("out_channels", "stride", "dilation", "temporal_stride", "temporal_dilation"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if any(int(k) <= 0 for k in self.kernel_size):
            raise ValueError(f"kernel_size: sizes must be positive, got {list(self.kernel_size)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.pool not in ("none", "aablur"):
            raise ValueError(f"pool: must be 'none' or 'aablur', got {self.pool!r}")
        if self.convs not in (1, 2):
            raise ValueError(f"convs: must be 1 or 2, got {self.convs}")
