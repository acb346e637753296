"""Wrong configs fail before training, with a message naming the key: one test per case.

Each case goes the way a run goes: Hydra composes the config (unknown keys, wrong types and
unknown options fail there), then ``train`` checks it and builds data and model (impossible
values fail there); nothing may be trained or written. ``pytest tests/config/test_validation_cases.py
-rP`` prints every message.
"""

from dataclasses import dataclass, field

import pytest
from conftest import MICRO_DATA, MICRO_MODEL, compose_config, run_cli
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from neuroenc.config.validate import ConfigError
from neuroenc.training.run import train

VIVIT = ["convnet=vivit", "convnet.embedding_dim=16", "convnet.num_heads=2", "convnet.ff_dim=32",
         "convnet.tokenizer.stride=[4,4,4]"]


@dataclass
class Case:
    name: str
    overrides: list[str]
    key: str  # the key the message must name
    model: list[str] = field(default_factory=lambda: list(MICRO_MODEL))
    data: list[str] = field(default_factory=lambda: list(MICRO_DATA))
    cli: bool = False  # through `python -m neuroenc`: what it checks happens before train() is called


CASES = [  # MICRO data: frames 12 x 16 pixels, window 24 frames (burn-in 8), simulated trials of 60 frames
    Case("unknown key", ["convnet.chanels=3"], "chanels"),
    Case("unknown top-level key", ["epochs=3"], "epochs"),
    Case("unknown option of a group", ["convnet=resnett"], "convnet/resnett"),
    Case("wrong type: text for an int", ["trainer.max_epochs=many"], "trainer.max_epochs"),
    Case("wrong type: fraction for an int", ["data.batch_size=8.5"], "data.batch_size"),
    Case("wrong type: text for a bool", ["frontend.anti_aliasing=maybe"], "frontend.anti_aliasing"),
    Case("wrong type: text for the no-validation opt-in", ["data.allow_no_validation=maybe"], "data.allow_no_validation"),
    Case("missing value: data path not given", ["data=sessions"], "data.root", data=[]),
    Case("data path does not exist", ["data=sessions", "data.root=/nonexistent/sessions"], "data.root", data=[]),
    Case("burn_in >= window", ["data.burn_in=24"], "data.burn_in"),
    Case("window longer than a trial", ["data.window=80"], "data.window"),
    Case("zero batch size", ["data.batch_size=0"], "data.batch_size"),
    Case("negative eye scale", ["data.eye_px_per_unit=-1"], "data.eye_px_per_unit"),
    Case("neurons_min > neurons_max", ["data.simulation.neurons_min=20"], "data.simulation.neurons_min"),
    Case("zero stride (resnet)", ["convnet.stages=[{out_channels:4,stride:0}]"], "convnet.stages[0].stride"),
    Case("negative dropout", ["convnet.stages=[{out_channels:4,dropout:-0.1}]"], "convnet.stages[0].dropout"),
    Case("zero stride (vivit tokenizer)", ["convnet.tokenizer.stride=[4,0,4]"], "convnet.tokenizer.stride[1]",
         model=VIVIT),
    Case("tokenizer larger than the input", ["convnet.tokenizer.stride=[4,16,16]"], "convnet.tokenizer.kernel_size",
         model=VIVIT),
    Case("heads not dividing the embedding", ["convnet.embedding_dim=30", "convnet.num_heads=4"], "convnet.num_heads",
         model=VIVIT),
    Case("attention dropout of 1", ["convnet.attn_dropout=1.0"], "convnet.attn_dropout", model=VIVIT),
    Case("zero frontend kernel", ["frontend.kernel_size=0"], "frontend.kernel_size"),
    Case("unknown frontend init", ["frontend.init=zeros"], "frontend.init"),
    Case("anti-aliased frontend kernel of 2 taps", ["frontend.kernel_size=2", "frontend.anti_aliasing=true"],
         "frontend.kernel_size"),
    Case("unknown anti-aliasing window", ["frontend.anti_aliasing=true", "frontend.aa_window=kaiser"],
         "frontend.aa_window"),
    Case("anti-aliasing window without anti-aliasing", ["frontend.aa_window=rect"], "frontend.aa_window"),
    Case("unknown readout nonlinearity", ["readout.nonlinearity=relu"], "readout.nonlinearity"),
    Case("negative learning rate", ["optim.lr=-0.001"], "optim.lr"),
    Case("negative warmup", ["optim.warmup_steps=-1"], "optim.warmup_steps"),
    Case("min_lr_ratio above 1", ["optim.min_lr_ratio=2"], "optim.min_lr_ratio"),
    Case("zero checkpoint interval", ["checkpoint.every_n_train_steps=0"], "checkpoint.every_n_train_steps"),
    Case("resume from a directory without a run", ["resume=/nonexistent/run"], "resume", cli=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_wrong_config_fails_before_training_naming_the_key(case, tmp_path):
    if case.cli:
        r = run_cli([*case.data, *case.model, *case.overrides], cwd=tmp_path, timeout=300)
        message = next((line for line in reversed(r.stderr.splitlines()) if "config key" in line), "")
        print(f"{case.name}: {' '.join(case.overrides)}\n  -> {message}")
        assert r.returncode != 0 and f"config key '{case.key}'" in r.stderr, r.stderr[-3000:]
        assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))
        return
    run_dir = tmp_path / "run"
    with pytest.raises((ConfigError, ConfigCompositionException, MissingConfigException,
                        OmegaConfBaseException)) as e:
        cfg = compose_config([*case.data, *case.model, *case.overrides])
        train(cfg, run_dir)
    message = str(e.value) + (f"\n{e.value.__cause__}" if e.value.__cause__ else "")
    print(f"{case.name}: {' '.join(case.overrides)}\n  -> {type(e.value).__name__}: {message}")
    assert case.key in message
    if isinstance(e.value, ConfigError):  # the key itself, or the group whose constructor named it
        assert case.key.startswith(e.value.key), e.value.key
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))
