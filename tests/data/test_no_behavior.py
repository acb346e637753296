"""Sessions with zero behaviour columns are valid: written, opened, scanned, windowed and imported
from an NWB file without ``--behavior``."""

import logging

import numpy as np
import pytest
import torch
from conftest import tiny_session

from neuroenc.data.datamodule import SessionDataModule
from neuroenc.data.sessions import SessionWriter, open_session, open_sessions
from neuroenc.model.modulator import ConvGRUModulator

T, N = 120, 5


def test_a_session_without_behaviour_is_written_opened_and_scanned(tmp_path):
    s = open_session(tiny_session(tmp_path / "s"))
    assert s.behavior.shape == (T, 0) and s.behavior_names == []
    assert s.stats()["behavior_mean"] == [] and s.stats()["behavior_std"] == []
    assert s.reader("behavior").read(10, 30).shape == (20, 0)
    assert (tmp_path / "s" / "stats.json").exists()


def test_the_writer_takes_a_zero_column_block_or_none_and_names_a_block_that_does_not_fit(tmp_path):
    tiny_session(tmp_path / "given", behavior=np.zeros((T, 0), np.float32), behavior_names=[])
    assert open_session(tmp_path / "given").behavior.shape == (T, 0)
    with SessionWriter(tmp_path / "bad", n_frames=T, n_neurons=N, frame_shape=(12, 16), behavior_names=[]) as w:
        with pytest.raises(ValueError, match=r"behavior block has shape \(120, 2\), expected \(120, 0\) "
                                             r"\(one column per name of behavior_names \[\]\)"):
            w.append(stim=np.zeros((T, 12, 16), np.uint8), robs=np.zeros((T, N), np.float32),
                     behavior=np.zeros((T, 2), np.float32), trial=np.zeros(T, np.int64))
    assert not (tmp_path / "bad").exists()


def test_windows_of_a_session_without_behaviour_have_zero_behaviour_columns(tmp_path):
    tiny_session(tmp_path / "sessions" / "a", "a")
    dm = SessionDataModule(str(tmp_path / "sessions"), window=20, burn_in=6, batch_size=4, num_workers=0, seed=0,
                           frame_rate=None, eye_px_per_unit=None, allow_no_validation=False)
    assert dm.info.behavior_dim == 0 and dm.info.behavior_names == []
    batch = next(iter(dm.train_dataloader()))
    assert batch["behavior"].shape == (4, 20, 0) and batch["stim"].shape == (4, 1, 20, 12, 16)


def test_a_convgru_without_behaviour_has_no_embedding_and_says_its_embedding_size_does_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="neuroenc.model.modulator"):
        quiet = ConvGRUModulator(4, behavior_dim=0, hidden_dim=4, beh_emb_dim=0, kernel_size=1)
    assert quiet.embed is None and not caplog.records
    with caplog.at_level(logging.WARNING, logger="neuroenc.model.modulator"):
        idle = ConvGRUModulator(4, behavior_dim=0, hidden_dim=4, beh_emb_dim=8, kernel_size=1)
    assert idle.embed is None
    assert "modulator.beh_emb_dim=8 does nothing: the data has no behaviour columns" in caplog.text
    out = idle(torch.zeros(2, 4, 5, 3, 3), torch.zeros(2, 5, 0))
    assert out.shape == (2, 4, 5, 3, 3)


def test_an_nwb_file_imports_without_behaviour(tmp_path):
    pytest.importorskip("pynwb")
    from test_nwb import SIM, options, write_nwb

    from neuroenc.data.nwb import convert
    from neuroenc.data.synthetic import simulate_session

    path = write_nwb(tmp_path / "mouse1.nwb", simulate_session(SIM, 0))
    convert([path], tmp_path / "sessions", options(behavior=[], eye=None))
    [s] = open_sessions(tmp_path / "sessions")
    assert s.behavior.shape == (s.n_frames, 0) and s.behavior_names == []
