"""Which run ``resume=...`` continues.

``resume=<run dir>`` names it. ``resume=true`` takes, under the root of Hydra's run (or sweep)
directory pattern (``outputs/`` for ``outputs/${now:...}/...``), the run whose
``.hydra/overrides.yaml`` holds the same overrides as this command apart from ``resume`` and
whose ``checkpoints/last.ckpt`` is newest. So the command that crashed, repeated with
``resume=true``, finds its own run, also for each job of a sweep (``-m``), whose job
directories record the job's own overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from omegaconf import OmegaConf

from neuroenc import atomic
from neuroenc.config.validate import ConfigError

LAST = Path("checkpoints") / "last.ckpt"


def wants_latest(resume: str | None) -> bool:
    return resume is not None and resume.lower() == "true"


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def without_resume(overrides) -> list[str]:
    """Overrides, order-independent, apart from any that sets ``resume``."""
    return sorted(o for o in overrides if override_key(o) != "resume")


def search_root(dir_pattern: str) -> Path:
    """The fixed part of a Hydra run-dir pattern: ``outputs/${now:%Y-%m-%d}/..`` -> ``outputs``."""
    fixed = dir_pattern.split("${", 1)[0]
    return Path(fixed if "${" in dir_pattern else dir_pattern).expanduser()


def find_run(overrides, root: Path) -> Path:
    """The newest run under ``root`` with a ``last.ckpt`` whose overrides equal ``overrides``."""
    want = without_resume(overrides)
    root = Path(root)
    matches, others = [], []
    for recorded in root.rglob(".hydra/overrides.yaml") if root.is_dir() else []:
        run = recorded.parent.parent
        if not (run / LAST).exists():
            continue
        if without_resume(OmegaConf.load(recorded)) == want:
            matches.append(run)
        else:
            others.append(run)
    if not matches:
        hint = f"; runs with a checkpoint there: {', '.join(map(str, sorted(others)[-5:]))}" if others else ""
        raise ConfigError("resume", f"no run under {str(root)!r} has {LAST} and the overrides {want}{hint}. "
                                    "Repeat the original command with resume=true, or give resume=<run dir>")
    return max(matches, key=lambda run: (run / LAST).stat().st_mtime)


def run_to_continue(resume: str, overrides, dir_pattern: str) -> Path:
    """The run directory ``resume`` refers to (see the module docstring)."""
    if wants_latest(resume):
        return find_run(overrides, search_root(dir_pattern))
    run = Path(resume).expanduser()
    if run.is_file() and run.name == LAST.name:  # the last.ckpt itself
        run = run.parent.parent
    if not (run / LAST).exists():
        raise ConfigError("resume", f"{str(run)!r} is not a run directory with {LAST}")
    return run


def requested(resume: str | None) -> bool:
    return resume is not None and resume.lower() not in ("false", "")


# keys that may change between a run and its resumption without changing what it computes
NEUTRAL_KEYS = ("resume", "logger", "checkpoint", "trainer.enable_progress_bar", "trainer.enable_model_summary",
                "data.num_workers", "data.cache_dir", "data.allow_no_validation")


def refuse_inexact(cfg) -> None:
    """Raise for a config under which a resumed run cannot end as the uninterrupted one would.

    The other Trainer options that shape epochs, validation and checkpoints continue exactly
    (:mod:`neuroenc.training.checkpointing`, tests/training/test_kill_matrix.py)."""
    if cfg.trainer.get("max_time") is not None:
        raise ConfigError("trainer.max_time", "a run that stops on the clock cannot be resumed exactly: where it stops "
                                              "depends on the machine's speed, and the time trained after the last "
                                              "checkpoint is not counted, so the resumed run trains longer. Give the "
                                              "budget as trainer.max_steps or trainer.max_epochs, or start a new run")


def checkpoint_to_continue(cfg, run_dir: Path) -> Path | None:
    """``run_dir/checkpoints/last.ckpt`` when ``cfg.resume`` asks to continue, after checking that
    it was written with this config (apart from :data:`NEUTRAL_KEYS`) and that the config can be
    continued exactly (:func:`refuse_inexact`); None for a new run.

    The check reads the file with :func:`~neuroenc.training.loading.read_checkpoint` (no code runs), so a
    checkpoint with pickled objects is refused before Lightning's own loader opens it."""
    from neuroenc.training.loading import config_differences, read_checkpoint

    if not requested(cfg.resume):
        return None
    refuse_inexact(cfg)
    path = Path(run_dir) / LAST
    if not path.exists():
        raise ConfigError("resume", f"{str(run_dir)!r} has no {LAST} to continue from")
    diffs = config_differences(read_checkpoint(path)["neuroenc"]["config"], cfg, ignore=NEUTRAL_KEYS)
    if diffs:
        raise ConfigError("resume", f"{path} was written with another config; a resumed run must compute the "
                                    "same thing as the one it continues. Differences:\n  " + "\n  ".join(diffs))
    return path


def run_of_this_job(resume: str, hydra_cfg) -> Path:
    """The run a Hydra job with ``resume=...`` continues; noted in the job's own directory."""
    from hydra.types import RunMode

    raw = cast(dict, OmegaConf.to_container(hydra_cfg, resolve=False))
    pattern = raw["sweep"]["dir"] if hydra_cfg.mode == RunMode.MULTIRUN else raw["run"]["dir"]
    run = run_to_continue(resume, list(hydra_cfg.overrides.task), pattern).resolve()
    here = Path(hydra_cfg.runtime.output_dir).resolve()
    if run != here:
        atomic.write_json(here / "resumed.json", {"continued_run": str(run)})
    return run
