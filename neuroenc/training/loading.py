"""Reading checkpoints without running code from them, and comparing their configs: what
resuming a run and :func:`neuroenc.load` (:mod:`neuroenc.trained`) share.

A checkpoint carries what is needed to rebuild its model without the data: the resolved
config, the session ids and the data shapes (``checkpoint["neuroenc"]``, written by
:class:`~neuroenc.training.module.EncoderModule`).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from neuroenc.data.datamodule import DatasetInfo

# the config groups that decide the model's parameters; everything else (data source, trainer,
# optimiser, logging) may differ between a checkpoint and the config it is used with
MODEL_KEYS = ("frontend", "convnet", "modulator", "readout", "shifter", "gaze")

# model groups a config stored by an older checkpoint lacks, and the option that checkpoint's
# model was built as without them: no per-frame gaze correction
OLDER_MODEL_GROUPS: dict[str, dict] = {"gaze": {"_target_": None}}


class ConfigMismatchError(ValueError):
    """A checkpoint used with a config it was not trained with; lists every differing key."""

    def __init__(self, what: str, differences: list[str]):
        super().__init__(f"{what} does not match the config in {len(differences)} key(s):\n  "
                         + "\n  ".join(differences))
        self.differences = differences


def _plain(config) -> Any:
    if isinstance(config, (DictConfig, ListConfig)):
        return OmegaConf.to_container(config, resolve=True)
    return config


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"convnet.stages[0].stride": 2, ...}``: one entry per leaf (empty containers are leaves)."""
    if isinstance(node, dict) and node:
        out = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(node, (list, tuple)) and node:
        out = {}
        for i, v in enumerate(node):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: node}


def _under(key: str, roots) -> bool:
    return any(key == r or key.startswith((f"{r}.", f"{r}[")) for r in roots)


def config_differences(stored, given, only=None, ignore=()) -> list[str]:
    """``"<key>: checkpoint <a>, config <b>"`` for every leaf that differs, limited to keys under
    ``only`` (top-level names; all when None) and not under ``ignore``. A group of
    :data:`OLDER_MODEL_GROUPS` that ``stored`` lacks counts as the option its model was built as."""
    stored = _plain(stored)
    if isinstance(stored, dict):
        stored = {**OLDER_MODEL_GROUPS, **stored}
    a, b = flatten(stored), flatten(_plain(given))
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        if (only is not None and not _under(key, only)) or _under(key, ignore):
            continue
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            show = lambda v: "(absent)" if v is missing else repr(v)
            out.append(f"{key}: checkpoint {show(va)}, config {show(vb)}")
    return out


# Python objects a neuroenc checkpoint holds beyond what ``torch.load(weights_only=True)`` accepts
# by itself (tensors, dicts, lists, tuples, strings, numbers, None): none. Lightning's loop and
# optimizer state, our callbacks' state and the config are all plain containers; a type added to
# a checkpoint later must be named here, and tests/training/test_safe_load.py checks a trained run loads.
SAFE_GLOBALS: tuple = ()


class UnsafeCheckpointError(ValueError):
    """A checkpoint file holding a pickled object neuroenc does not write: refused, not unpickled."""


def _blocked_global(message: str) -> str:
    """``posix.system`` from torch's "Trying to load unsupported GLOBAL posix.system whose ..."."""
    for line in message.splitlines():
        if "GLOBAL" in line:
            return line.split("GLOBAL", 1)[1].split()[0]
    return "an object"


def read_checkpoint(path, map_location="cpu") -> dict:
    """The content of a checkpoint file, read without running any code it may carry.

    ``torch.load(weights_only=True)`` with :data:`SAFE_GLOBALS`: a checkpoint someone sent may
    be a crafted pickle, and a plain ``torch.load`` would execute it. Raises
    :class:`UnsafeCheckpointError` for a file with anything else in it, ``ValueError`` for one
    that is no checkpoint or not neuroenc's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        # memory-mapped, so reading the config of a large checkpoint does not read its tensors
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"checkpoint {str(path)!r} refused: it holds a pickled Python object ({_blocked_global(str(e))}) of a "
            "kind neuroenc checkpoints never contain, and unpickling it could run code from the file, so nothing "
            "was loaded. Open it with torch.load(..., weights_only=False) only if you trust its source") from None
    except RuntimeError as e:  # not a zip file torch.save wrote (mmap needs one)
        raise ValueError(f"checkpoint {str(path)!r} is not a checkpoint torch.save wrote ({e})") from None
    if not isinstance(ckpt, dict) or "neuroenc" not in ckpt or "state_dict" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"checkpoint {str(path)!r} was not written by neuroenc training "
                         f"(no 'neuroenc' entry; keys: {keys})")
    return ckpt


def data_info(ckpt: dict, path) -> DatasetInfo:
    """The data shapes the model was built for (``checkpoint["neuroenc"]["data_info"]``)."""
    stored = ckpt["neuroenc"].get("data_info")
    if stored is None:
        raise ValueError(f"checkpoint {str(path)!r} has no 'data_info' (session ids, neurons per session, frame "
                         "shape, behaviour columns) under 'neuroenc', which the model is rebuilt from: it was written "
                         "before checkpoints stored them; train it again")
    return DatasetInfo(**{**stored, "frame_shape": tuple(stored["frame_shape"])})
