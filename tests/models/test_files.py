"""Atomic writes: the old file or folder survives any failure."""

from __future__ import annotations

import pytest

from models.errors import CadenzaError
from models.files import replacing, replacing_folder, write_bytes


def test_replacing_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "song.mid"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["song.mid"]


def test_replacing_replaces_whole_file(tmp_path):
    target = tmp_path / "take.wav"
    target.write_bytes(b"old content that is longer")
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(CadenzaError, match="does not exist"):
        write_bytes(tmp_path / "nowhere" / "x.mid", b"x")


def test_folder_replaced_as_a_whole(tmp_path):
    target = tmp_path / "instrument"
    target.mkdir()
    (target / "old.wav").write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing_folder(target) as building:
        (building / "new.wav").write_bytes(b"new")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["old.wav"]
    with replacing_folder(target) as building:
        (building / "new.wav").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["new.wav"]
    assert [p.name for p in tmp_path.iterdir()] == ["instrument"]


def test_folder_left_aside_by_a_dead_process_is_restored(tmp_path):
    target = tmp_path / "instrument"
    aside = tmp_path / ".instrument.old-deadbeef"
    aside.mkdir()
    (aside / "note.wav").write_bytes(b"old")
    with replacing_folder(target) as building:
        (building / "x").write_bytes(b"1")
    assert (target / "x").exists()
    assert not aside.exists()
