"""``python -m neuroenc [overrides]``: the Hydra app that trains an encoder."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from neuroenc.schema import register

register()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from neuroenc.train import train  # heavy imports after Hydra has parsed the command line

    result = train(cfg, HydraConfig.get().runtime.output_dir)
    return result["best_val_bps_overall"]


if __name__ == "__main__":
    main()
