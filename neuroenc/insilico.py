"""``python -m neuroenc.insilico checkpoint=<run dir or .ckpt>``: in-silico experiments on a trained
model (receptive fields, grating tuning, MEIs, saccade-triggered responses, scores per stimulus
class), against the simulator's truth where the data has it. The code is
:mod:`neuroenc.analysis.insilico`."""

import hydra
from omegaconf import DictConfig

from neuroenc.analysis.insilico.experiments import run_insilico
from neuroenc.config.compose import CONF_DIR
from neuroenc.config.schema import register

register()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="insilico")
def main(cfg: DictConfig) -> None:
    run_insilico(cfg.checkpoint, list(cfg.analyses), None if cfg.sessions is None else list(cfg.sessions),
                 None if cfg.neurons is None else list(cfg.neurons), cfg.out_dir, cfg.device, cfg.data_root, cfg.seed)


if __name__ == "__main__":
    main()
