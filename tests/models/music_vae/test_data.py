"""Windows from data folders: split by file, Groove's own split, the cache."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.music_vae import converters as conv
from models.music_vae import data

from .conftest import link_files


def test_split_never_puts_one_file_on_both_sides(nottingham_subset, tmp_path):
    ws = data.load_folder(nottingham_subset, conv.melody_converter(2), tmp_path,
                          validation_fraction=0.3)
    assert len(ws.train) > 100 and len(ws.val) > 10
    train_pieces, val_pieces = ws.pieces_of(False), ws.pieces_of(True)
    assert train_pieces and val_pieces and not train_pieces & val_pieces
    for p in range(len(ws.pieces)):
        sides = set(ws.validation[ws.piece[ws.piece == p]].tolist())
        assert len(sides) == 1
    # The split of a file does not depend on which other files are there.
    first = ws.pieces[0].split("/", 1)[1]
    assert bool(ws.validation[0]) == data.is_validation_piece(first, 0.3)


def test_second_run_reads_the_cache(nottingham_subset, tmp_path):
    converter = conv.melody_converter(2)
    ws = data.load_folder(nottingham_subset, converter, tmp_path, validation_fraction=0.3)
    caches = list(tmp_path.glob("windows-*.npz"))
    assert len(caches) == 1
    # Mark the cached windows: a second run must return the marked ones, not re-extract.
    marked = data.WindowSet(np.full_like(ws.windows, 7), ws.piece, ws.pieces, ws.validation)
    data._save(caches[0], marked)
    again = data.load_folder(nottingham_subset, converter, tmp_path, validation_fraction=0.3)
    assert np.all(again.windows == 7) and again.pieces == ws.pieces
    # Another converter (16 bars) does not hit the 2-bar cache.
    other = data.load_folder(nottingham_subset, conv.melody_converter(16), tmp_path,
                             validation_fraction=0.3)
    assert other.windows.shape[1] == 256 and len(list(tmp_path.glob("windows-*.npz"))) == 2


def test_groove_split_follows_info_csv(datasets_dir, tmp_path):
    root = datasets_dir / "drums" / "groove"
    with (root / "info.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["time_signature"] == "4-4"]
    train_rows = [r for r in rows if r["split"] == "train"][::80][:8]
    val_rows = [r for r in rows if r["split"] == "validation"][::20][:6]
    picked = train_rows + val_rows
    dest = link_files([root / r["midi_filename"] for r in picked], root, tmp_path / "groove")
    with (dest / "info.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(picked)
    ws = data.load_folder(dest, conv.drums_converter(2), None)
    assert data.source_label(str(dest)) == "groove"
    split = {f"groove/{r['midi_filename']}": r["split"] for r in picked}
    assert ws.pieces
    for name, is_val in zip(ws.pieces, ws.validation, strict=True):
        assert is_val == (split[name] != "train")
    assert ws.validation.any() and (~ws.validation).any()


def test_transposition_keeps_melodies_in_range():
    w = np.array([[0, 1, 2, 89, 0], [0, 40, 1, 50, 0]], np.int16)
    out = data.transpose_windows(w, np.array([3, 3]))
    assert np.array_equal(out[0], w[0])  # 89 + 3 would leave the range: unchanged
    assert out[1].tolist() == [0, 43, 1, 53, 0]


def test_pop909_uses_the_melody_track_only(datasets_dir):
    from models.midi_io import read_midi

    seq = read_midi(datasets_dir / "piano" / "pop909" / "014.mid")  # marked 1/4, read as 4/4
    assert (seq.time_signature.numerator, seq.time_signature.denominator) == (1, 4)
    windows = data.sequence_windows(seq, conv.melody_converter(2))
    only = seq.copy()
    melody = [i for i, n in seq.instrument_names.items() if n == "MELODY"]
    only.notes = [n for n in seq.notes if n.instrument in melody]
    assert len(windows) > 10
    assert {tuple(w) for w in windows} == {tuple(w) for w in
                                           data.sequence_windows(only, conv.melody_converter(2))}


def test_music21_tune_becomes_a_sequence():
    from music21 import corpus

    paths = data.music21_paths(("ryansMammoth",))
    assert len(paths) > 500
    score = corpus.parse(str(paths[3]))
    seq = data.music21_to_sequence(score)
    assert len(seq.notes) > 20 and seq.qpm == 120.0
    assert all(n.end > n.start for n in seq.notes)
    assert isinstance(Path(paths[0]), Path)


def test_music21_tune_is_read_as_played():
    # Derby Hornpipe: 2/4 with a pickup of one eighth, each of its two parts repeated. Read as
    # the app reads a score: the repeats played out, the pickup padded to a whole bar.
    from music21 import corpus, repeat

    path = next(p for p in data.music21_paths(("ryansMammoth",)) if p.name == "DerbyHornpipe.abc")
    score = corpus.parse(str(path))
    written = sum(1 for n in score.flatten().notes)
    assert list(score.recurse().getElementsByClass(repeat.RepeatMark))  # repeats as written
    seq = data.music21_to_sequence(score)
    assert len(seq.notes) == 2 * written
    assert (seq.time_signature.numerator, seq.time_signature.denominator) == (2, 4)
    assert seq.notes[0].start == 0.75  # the pickup's eighth ends the first bar (1 s at 120 qpm)
    notes = seq.notes
    assert all(b.start >= a.end - 1e-9 for a, b in zip(notes, notes[1:], strict=False))  # a line
    # A 16-bar window is 256 sixteenths, 32 bars of 2/4: the tune as written is too short for
    # one, as played it gives windows.
    sixteen = replace(conv.melody_converter(16), any_meter=True)
    assert len(data.sequence_windows(seq, sixteen)) >= 2
    as_written = data.NoteSequence(notes=seq.notes[:written], tempos=seq.tempos,
                                   time_signatures=seq.time_signatures)
    assert len(data.sequence_windows(as_written, sixteen)) == 0


def test_music21_tune_keeps_its_metre_changes(tmp_path):
    from music21 import converter as m21converter

    abc = ("X:1\nT:Changes\nM:6/8\nL:1/8\nK:G\nGAB c2d|e2d B2A|[M:9/8]GAB c2d e2f|"
           "[M:6/8]g3 d3|G6|]\n")
    score = m21converter.parse(abc, format="abc")
    seq = data.music21_to_sequence(score)
    # music21's ABC reader makes the 9/8 bar (3 s to 5.25 s) a bar of 6/8 and one of 3/8; the
    # bar lines it keeps are the clip's.
    assert [(t.time, t.numerator, t.denominator) for t in seq.time_signatures] == [
        (0.0, 6, 8), (4.5, 3, 8), (5.25, 6, 8)]
    assert [n.start for n in seq.notes][-3:] == [5.25, 6.0, 6.75]
    cached = tmp_path / "cache"
    first = data.music21_sequences(("ryansMammoth/DerbyHornpipe",), cached)
    again = data.music21_sequences(("ryansMammoth/DerbyHornpipe",), cached)  # from the cache
    assert [s.notes for _, s in first] == [s.notes for _, s in again]
    assert [s.time_signatures for _, s in first] == [s.time_signatures for _, s in again]


def test_train_hop_adds_windows_to_training_pieces_only(nottingham_subset, tmp_path):
    converter = conv.melody_converter(2)
    bar = data.load_folder(nottingham_subset, converter, tmp_path, validation_fraction=0.3)
    beat = data.load_folder(nottingham_subset, converter, tmp_path, validation_fraction=0.3,
                            train_hop=4)
    assert len(list(tmp_path.glob("windows-*.npz"))) == 2  # its own cache
    assert beat.pieces == bar.pieces and np.array_equal(beat.validation, bar.validation)
    for p in range(len(bar.pieces)):
        one, four = bar.windows[bar.piece == p], beat.windows[beat.piece == p]
        if bar.validation[p]:
            assert np.array_equal(one, four)  # validation windows: every bar, as evaluated
        else:
            # Every one-bar-hop window is still there, with the ones that start on other beats.
            assert {tuple(w) for w in one} <= {tuple(w) for w in four}
    assert len(beat.train) > 2.5 * len(bar.train)
    assert np.array_equal(beat.val, bar.val)


def test_counts_add_up_per_source_name(nottingham_subset, tmp_path):
    # Two folders with one name (two halves of a set) are one source: their counts add up.
    files = sorted(nottingham_subset.glob("*.mid"))
    first = link_files([f.resolve() for f in files[:12]], files[0].resolve().parent,
                       tmp_path / "a" / "nottingham")
    second = link_files([f.resolve() for f in files[12:]], files[0].resolve().parent,
                        tmp_path / "b" / "nottingham")
    converter = conv.melody_converter(2)
    ws, counts, _ = data.timed_load([str(first), str(second)], converter, tmp_path / "cache")
    one = data.load_folder(first, converter, None)
    assert counts == {"nottingham": len(ws.windows)}
    assert 0 < len(one.windows) < len(ws.windows)
    # music21 arguments are counted under the collections they name.
    assert data.source_name("music21") == "music21"
    assert data.source_name("music21:oneills1850,airdsAirs") == "music21:oneills1850,airdsAirs"
    assert data.music21_collections("music21:") == data.MUSIC21_DEFAULT
    assert data.source_label("music21:oneills1850") == "music21"


def test_music21_missing_says_how_to_install_it(monkeypatch, tmp_path):
    import sys

    import pytest

    from models.errors import CadenzaError

    monkeypatch.setitem(sys.modules, "music21", None)  # as if it were not installed
    with pytest.raises(CadenzaError) as caught:
        data.load_source("music21", conv.melody_converter(2), tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "pip install music21" in message
