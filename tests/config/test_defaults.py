"""Every value a user gets is written once, in ``conf/``; the schemas hold types only (docs/architecture.md)."""

import dataclasses

import pytest
import yaml
from conftest import CONF, compose_config
from omegaconf import MISSING, OmegaConf

from neuroenc.config import schema
from neuroenc.config.compose import groups
from neuroenc.config.records import SimulationParams, StageSpec

ROOTS = [schema.Config, schema.EvaluateConfig, schema.PredictConfig]
# records of their classes, which keep their own defaults (the schema module's docstring says why)
RECORDS = (SimulationParams, StageSpec)


def schema_values(cls, path: str, node=None) -> list[str]:
    """``"<path>.<field> = <value>"`` for every field of ``cls`` (and of the schemas nested in it)
    whose default (its value in ``node``, a nested default) is a value, not MISSING; ``_target_``,
    the links to the run's seed and the empty logger slots are not values."""
    out = []
    for f in dataclasses.fields(cls):
        if node is not None:
            value = getattr(node, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue  # no default at all: as missing as MISSING
        key = f"{path}.{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, RECORDS):
            out += schema_values(type(value), key, value)
        elif not (value == MISSING or f.name == "_target_" or (f.name == "seed" and value == "${seed}")
                  or (cls is schema.LoggerConfig and value is None)):
            out.append(f"{key} = {value!r}")
    return out


def test_the_schemas_hold_no_value():
    found = [v for root in ROOTS for v in schema_values(root, root.__name__)]
    found += [v for group, options in schema.SCHEMAS.items() for name, cls in options.items()
              for v in schema_values(cls, f"schema/{group}/{name}")]
    assert not found, "values belong in the option YAML under conf/, not in the schema:\n" + "\n".join(found)


def test_the_check_sees_a_value_written_in_a_schema():
    @dataclasses.dataclass
    class Sneaky:
        _target_: str = "x"
        kernel_size: int = 16
        nested: schema.TokenizerConfig = dataclasses.field(default_factory=lambda: schema.TokenizerConfig(stride=[2]))

    assert schema_values(Sneaky, "s") == ["s.kernel_size = 16", "s.nested.stride = [2]"]


# keys each composition leaves for the user to give
REQUIRED = {"data=sessions": {"data.root"}}
COMPOSITIONS = [[f"{g}={o}"] for g, opts in groups().items() for o in opts]


@pytest.mark.parametrize("overrides", COMPOSITIONS, ids=lambda o: o[0])
def test_every_option_and_preset_gives_every_value(overrides):
    """The schemas give no value, so a key its YAML leaves out would be missing here."""
    assert OmegaConf.missing_keys(compose_config(overrides)) == REQUIRED.get(overrides[0], set())


@pytest.mark.parametrize("name", ["evaluate", "predict"])
def test_the_commands_configs_give_every_value_but_the_checkpoint(name):
    assert OmegaConf.missing_keys(compose_config([], config_name=name)) == {"checkpoint"}


def test_data_synthetic_writes_the_simulators_own_defaults():
    """The simulator's record keeps defaults for callers outside a config; data=synthetic writes
    each of them, so neither can change without the other."""
    record = {f.name: getattr(SimulationParams(), f.name) for f in dataclasses.fields(SimulationParams)}
    del record["seed"]  # the run's seed
    written = yaml.safe_load((CONF / "data" / "synthetic.yaml").read_text())["simulation"]
    assert written.keys() == record.keys()
    simulation = OmegaConf.to_container(compose_config(["data=synthetic"]).data.simulation)
    assert {k: simulation[k] for k in record} == record


def test_grep_finds_the_learning_rate_in_conf():
    assert "lr: " in (CONF / "optim" / "adamw.yaml").read_text()
    assert compose_config([]).optim.lr == yaml.safe_load((CONF / "optim" / "adamw.yaml").read_text())["lr"]


def test_a_preset_sets_the_root_keys(tmp_path):
    """conf/config.yaml's own keys (seed, checkpoint, scale, ...) come before the presets: a preset
    that sets one is not overridden by them."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "probe.yaml").write_text(
        "# @package _global_\nscale: 0.5\ncheckpoint:\n  every_n_minutes: 1.0\noptim:\n  lr: 0.003\n")
    cfg = compose_config([f"hydra.searchpath=[file://{tmp_path}]", "experiment=probe"])
    assert (cfg.scale, cfg.checkpoint.every_n_minutes, cfg.optim.lr) == (0.5, 1.0, 0.003)
