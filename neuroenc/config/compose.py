"""Where ``conf/`` is, what it offers, and composing it as ``python -m neuroenc`` does.

The one place that locates the config directory: the Hydra apps (``config_path=CONF_DIR``), the
inspector, the benchmarks and the tests all compose through here. The groups and options listed
are the YAML files under ``conf/``; the structured-config schemas live in Hydra's ConfigStore under
``schema/<group>`` (:func:`neuroenc.config.schema.register`), so they are never offered as options.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# groups of conf/ a user does not pick an option from on the command line
NOT_CHOSEN = ("hydra",)


def register() -> None:
    """The schemas and every resolver a composed config or ``--help`` uses (idempotent)."""
    from neuroenc.config.job_names import register_resolver
    from neuroenc.config.schema import register as register_schemas

    register_schemas()
    register_resolver()
    if not OmegaConf.has_resolver("neuroenc_groups"):
        OmegaConf.register_new_resolver("neuroenc_groups", lambda choices: format_groups(choices))
    if not OmegaConf.has_resolver("neuroenc_presets"):
        OmegaConf.register_new_resolver("neuroenc_presets", lambda: format_presets())


def compose_config(overrides=(), config_name: str = "config") -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides``, composed as ``python -m neuroenc`` composes it."""
    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def groups() -> dict[str, list[str]]:
    """``{group: [option, ...]}`` for every config group a user chooses from, sorted."""
    return {d.name: options(d.name) for d in sorted(CONF_DIR.iterdir())
            if d.is_dir() and d.name not in NOT_CHOSEN and options(d.name)}


def options(group: str) -> list[str]:
    """The options of ``group``: its YAML files' names."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def presets() -> list[str]:
    """The ``experiment=<name>`` presets."""
    return options("experiment")


def describe(group: str, option: str) -> str:
    """The option's own one-line summary: its first comment line (after ``@package``), up to a colon."""
    for line in (CONF_DIR / group / f"{option}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("# ").strip()
        if text and not text.startswith("@package"):
            return text.split(": ", 1)[0].rstrip(".,")
    return ""


def format_groups(choices=None) -> str:
    """One line per group, ``group: a, b*, c``, ``*`` marking the option the command line gets."""
    choices = dict(choices or {})
    lines = []
    for group, opts in groups().items():
        if group == "experiment":
            continue  # listed with their descriptions
        chosen = choices.get(group)
        lines.append(f"  {group + ':':<16}" + ", ".join(o + ("*" if o == chosen else "") for o in opts))
    return "\n".join(lines)


def format_presets() -> str:
    names = presets()
    width = max(map(len, names), default=0)
    return "\n".join(f"  {n:<{width}}  {describe('experiment', n)}" for n in names)
