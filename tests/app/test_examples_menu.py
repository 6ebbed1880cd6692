"""File ▸ Open Examples: every example lands in the clip library, ready for each workspace."""

from __future__ import annotations

from pathlib import Path

from app.resources import examples_dir

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = ["drums-funk", "drums-rock", "melody-a", "melody-b", "piano-phrase", "sound-cello",
            "sound-flute", "sound-organ"]


def _file_action(window, text):
    (file_menu,) = [a.menu() for a in window.menuBar().actions() if a.text() == "&File"]
    (action,) = [a for a in file_menu.actions() if a.text() == text]
    return action


def test_open_examples_fills_the_library_for_every_workspace(window, qtbot, artifacts_dir):
    folder = examples_dir()
    assert folder == ROOT / "assets" / "examples"
    assert not window.library.clips()
    _file_action(window, "Open &Examples").trigger()
    qtbot.wait(50)
    clips = window.library.clips()
    assert [c.name for c in clips] == EXPECTED
    assert [c.is_midi for c in clips] == [True] * 5 + [False] * 3
    assert all(c.source == folder / (c.name + (".mid" if c.is_midi else ".wav"))
               for c in clips)
    # the piano phrase is shown, and is Continue's primer
    assert window.library.current_clip().name == "piano-phrase"
    assert window.clip_stack.currentWidget() is window.piano_roll
    assert window.workspaces["Continue"].primer.currentText() == "piano-phrase"
    # Interpolate's A and B are the two melodies (not the grooves listed first: the clips pick
    # the model, a melody one when there are melodies), Morph's two sounds
    interpolate = window.workspaces["Interpolate"]
    assert [c.name for c in interpolate.endpoint_clips()[:2]] == ["melody-a", "melody-b"]
    morph = window.workspaces["Morph"]
    assert [s.clip().name for s in morph.slots[:2]] == ["sound-cello", "sound-flute"]
    assert window.last_message.startswith("Opened")

    window.show_workspace("Continue")
    qtbot.wait(50)
    assert window.piano_roll.roll.painted_notes > 20
    path = artifacts_dir / "examples.png"
    assert window.grab().save(str(path))
    assert path.stat().st_size > 10_000


def test_a_missing_examples_folder_says_so_in_one_line(window, tmp_path):
    assert window.open_examples(tmp_path / "no-examples") == []
    assert window.library.clips() == []
    assert window.last_message.startswith("No examples found")
    assert "\n" not in window.last_message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert window.open_examples(empty) == []
    assert window.last_message.startswith("No examples found")
