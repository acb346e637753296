"""DDP inside a Hydra multirun: each job's ranks run that job, in that job's directory.

Lightning starts DDP ranks 1..N-1 by re-running the command line. In a ``--multirun`` that
command is the whole sweep, so every child rank would start the sweep again (and write into
the unused ``hydra.run.dir``). We give the children the job's own overrides instead, as a
single run in the job's output directory.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
from lightning.pytorch.strategies.launchers import subprocess_script as trainer_launcher


def job_subprocess_cmd(local_rank: int) -> tuple[list[str], str]:
    """The command that starts DDP rank ``local_rank`` of the current Hydra job, and its cwd."""
    import __main__

    hc = HydraConfig.get()
    module = __main__.__spec__.name if __main__.__spec__ is not None else "neuroenc"
    command = [sys.executable, "-m", module, *hc.overrides.task]
    command += [f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name={hc.job.name}_rank{local_rank}",
                "hydra.output_subdir=null"]
    return command, hc.runtime.cwd


def launch_ranks_per_job() -> None:
    """Make Lightning's DDP launcher start child ranks with :func:`job_subprocess_cmd`."""
    # the Trainer's launcher imported the function by name, so both modules need the new one
    fabric_launcher._hydra_subprocess_cmd = job_subprocess_cmd
    trainer_launcher._hydra_subprocess_cmd = job_subprocess_cmd


DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def job_process_group():
    """Run one job's DDP world and leave the process as the job found it.

    Lightning's launcher sets LOCAL_RANK & co. in the parent's environment; left there, the next
    job of a sweep would take them to mean "ranks are started externally" and wait forever for
    ranks nobody starts. The process group goes too, so the next job can make its own.
    """
    import torch.distributed as dist

    before = {k: os.environ.get(k) for k in DDP_ENV}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
