"""``python -m neuroenc [overrides]``: the Hydra app that trains an encoder."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from neuroenc.config.compose import CONF_DIR, register

register()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from neuroenc.training.ddp import job_process_group
    from neuroenc.training.resume import requested, run_of_this_job
    from neuroenc.training.run import train  # heavy imports after Hydra has parsed the command line

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if requested(cfg.resume):  # continue in the run's own directory; this job's records where it went
        run_dir = run_of_this_job(cfg.resume, HydraConfig.get())
    with job_process_group():
        result = train(cfg, run_dir)
    return result.get("best_val_bps_overall")  # what an Optuna sweep maximises; {} on DDP ranks > 0


if __name__ == "__main__":
    main()
