"""Every option of every config group composes (with the defaults of the others), resolves, and
passes the checks a run makes before training; Hydra's launcher options compose with the run's
Hydra config. A YAML that no test composed could break unseen."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from neuroenc.config.compose import CONF_DIR, compose_config, groups, options
from neuroenc.config.schema import register
from neuroenc.config.validate import check

OPTIONS = [(g, o) for g, opts in groups().items() for o in opts]
CONF = str(CONF_DIR)  # any directory will do: the check is that data.root is one
NEEDS = {("data", "sessions"): [f"data.root={CONF}", "data.frame_rate=30"]}


def test_the_groups_are_found():
    assert {"data", "frontend", "convnet", "modulator", "readout", "shifter", "gaze", "trainer", "logger",
            "experiment"} <= {g for g, _ in OPTIONS}


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_resolves_and_passes_the_checks(group, option):
    cfg = compose_config([f"{group}={option}", *NEEDS.get((group, option), [])])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if group != "hparams_search":  # a search space's config is a sweep's, not a run's
        check(cfg)
    if group not in ("experiment", "hparams_search"):
        assert OmegaConf.select(cfg, group) is not None


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_every_launcher_composes_into_the_hydra_config(launcher):
    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_
