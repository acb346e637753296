"""DDP inside a Hydra multirun: each job's ranks run that job, in that job's directory.

Lightning starts DDP ranks 1..N-1 by re-running the command line. In a ``--multirun`` that
command is the whole sweep, so every child rank would start the sweep again (and write into
the unused ``hydra.run.dir``). We give the children the job's own overrides instead, as a
single run in the job's output directory.
"""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from lightning.fabric.strategies.launchers import subprocess_script


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
    subprocess_script._hydra_subprocess_cmd = job_subprocess_cmd
