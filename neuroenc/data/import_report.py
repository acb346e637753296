"""The import report: what an importer read and what it did, beside every session it writes.

Every importer (``neuroenc.data.nwb``, ``neuroenc.data.sensorium``) hands :func:`build` the
session it has just written plus what only it knows (units dropped, the stimulus's source rate and
resampling, behaviour coverage, every warning); :func:`build` adds the figures that can be read
off the session itself (spike counts, silent units, valid-bin fraction, splits), so they are
computed one way for every importer. The report is written as ``import_report.json`` in the
session directory and printed by the import command; ``python -m neuroenc.data check DST``
prints it again, or the session's own figures for a directory without one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuroenc import atomic
from neuroenc.data.sessions import SPLITS, open_session, open_sessions, valid_bins

REPORT_FILE = "import_report.json"


def session_figures(session) -> dict:
    """Figures read off a written session: neurons, frames, splits, responses per neuron, the
    neurons silent in every imported trial (and in training), the valid-bin fraction."""
    trial = np.asarray(session.trial)
    splits = {s: [int(t) for t in session.meta["splits"].get(s, [])] for s in SPLITS}
    train = np.isin(trial, splits["train"])
    n, width = session.robs.shape
    counts, train_counts, n_valid = np.zeros(width), np.zeros(width), 0
    for a in range(0, n, 1 << 15):  # chunked: a long recording's responses need not fit in memory
        b = min(a + (1 << 15), n)
        raw = session.reader("robs").read(a, b)
        valid = valid_bins(raw, None if session.dfs is None else session.reader("dfs").read(a, b))
        robs = np.where(valid, np.nan_to_num(raw.astype(np.float64)), 0.0)
        counts += robs.sum(0)
        train_counts += robs[train[a:b]].sum(0)
        n_valid += int(valid.sum())
    ids = list(session.meta["neuron_ids"])
    return {
        "session_id": session.id,
        "neurons": int(width),
        "frames": int(n),
        "frame_rate": float(session.frame_rate),
        "frame_shape": list(session.stim.shape[1:]),
        "trials": {s: len(v) for s, v in splits.items()},
        "frames_per_split": {s: int(np.isin(trial, v).sum()) for s, v in splits.items()},
        "trials_in_no_split": int(len(set(np.unique(trial).tolist()) - {t for v in splits.values() for t in v})),
        "response_total": float(counts.sum()),
        "response_per_neuron": {"min": float(counts.min(initial=0)), "median": float(np.median(counts)) if len(counts)
                                else 0.0, "max": float(counts.max(initial=0))},
        "silent_neurons": [ids[j] for j in np.flatnonzero(counts == 0)],
        "silent_in_training": [ids[j] for j in np.flatnonzero(train_counts == 0)],
        "valid_bin_fraction": n_valid / (n * width) if n * width else 1.0,
        "behavior": list(session.behavior_names),
    }


def build(session, *, source: str, importer: str, read: dict | None = None, done: dict | None = None,
          warnings: list[str] | None = None) -> dict:
    """The report of one written session: ``read`` (what the importer found in the source:
    objects, units kept and dropped, the stimulus's source rate), ``done`` (what it did:
    resampling, frames dropped or duplicated, behaviour coverage and masking) and ``warnings``
    (each one as printed), beside the session's own figures."""
    return {"format": "neuroenc-import-report/1", "importer": importer, "source": source,
            "session": session_figures(session), "read": read or {}, "done": done or {},
            "warnings": list(warnings or [])}


def write(session_dir: Path, report: dict) -> Path:
    return atomic.write_json(Path(session_dir) / REPORT_FILE, report, durable=False)


def read(session_dir: Path) -> dict | None:
    f = Path(session_dir) / REPORT_FILE
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{f}: not a readable import report ({e})") from None


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        if len(v) > 12:
            return ", ".join(map(_value, v[:12])) + f", ... ({len(v)} in all)"
        return ", ".join(map(_value, v)) if v else "none"
    return str(v)


def render(report: dict) -> str:
    """The report as the lines a person reads: the session's figures, what was read, what was
    done, then the warnings (the same text for the import and for ``check``)."""
    s = report["session"]
    lines = [f"session {s['session_id']}  ({report.get('importer', '?')} import of {report.get('source', '?')})"]
    for key in ("neurons", "frames", "frame_rate", "frame_shape", "trials", "frames_per_split", "trials_in_no_split",
                "response_total", "response_per_neuron", "silent_neurons", "silent_in_training",
                "valid_bin_fraction", "behavior"):
        lines.append(f"  {key.replace('_', ' ')}: {_value(s[key])}")
    for section in ("read", "done"):
        for key, v in report.get(section, {}).items():
            lines.append(f"  {section}: {key.replace('_', ' ')}: {_value(v)}")
    warnings = report.get("warnings", [])
    lines.append(f"  warnings: {len(warnings)}")
    lines += [f"    - {w}" for w in warnings]
    return "\n".join(lines)


def check(root: Path) -> list[dict]:
    """Reports of every session under ``root`` (a session directory or a directory of them):
    the stored one, its session figures recomputed from the files as they are now (a session
    edited after its import shows its current figures), or the figures alone where no import
    wrote a report."""
    root = Path(root)
    sessions = [open_session(root)] if (root / "meta.json").is_file() else open_sessions(root)
    out = []
    for session in sessions:
        stored = read(session.path)
        figures = session_figures(session)
        if stored is None:
            out.append({"importer": "none recorded", "source": str(session.path), "session": figures, "read": {},
                        "done": {}, "warnings": []})
        else:
            out.append({**stored, "session": figures})
    return out
