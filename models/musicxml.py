"""MusicXML (``.musicxml``, ``.xml`` and compressed ``.mxl``) to and from
:class:`~models.sequence.NoteSequence`, through music21.

music21 is a dependency (an environment without it says so in one line) and slow to import (about
0.2 s warm, a second or more cold), so it is imported inside the functions that need it, never by
importing this module. Every problem with a file becomes a one-line
:class:`~models.errors.CadenzaError` that names it; the bytes are checked before music21 sees them
(size, a ``.mxl`` archive's unpacked size, well-formed XML, a ``<score-partwise>`` root, the count
of notes), so a huge or corrupt file is refused in well under a second.

Reading:

* Each part becomes one ``instrument`` (named after the part; its program is the part's MIDI
  program). A percussion part (unpitched notes, or a percussion instrument) gives drum notes:
  the part's own MIDI drum when it names one (a lone snare), else the drum that the note's place
  on a standard drum staff stands for (kick on F4, snare on C5, hi-hat as an x on G5, ...).
* Tempo marks (``<metronome>``, ``<sound tempo>``) make the tempo map (120 qpm without any);
  time signatures are kept; tied notes are one note; grace notes are left out. Key signatures
  are not kept: a NoteSequence has none.
* A pickup bar is padded at the start so that bar lines fall on whole bars from 0 s, as the
  models' bar windows expect.
* Repeats are played out as a musician plays them (repeat bar lines, first and second endings,
  D.C. and D.S. marks, through music21's repeat expander); a score whose repeats cannot be
  played out (a broken mark), or would come out longer than :data:`MAX_EXPANDED_MEASURES`
  bars, is read as written.
* Dynamics marks set the velocity of the notes after them in their part, as MuseScore plays
  them (``p`` 49, ``mf`` 80, ``f`` 96, ...: :data:`DYNAMIC_VELOCITY`); a note's own velocity
  (``<sound dynamics>``) comes first; without either a note has velocity 80 (mf).

Writing (:func:`musicxml_bytes`, :func:`write_musicxml`) quantizes onsets and ends to the
sixteenth grid of the sequence's tempo map (a note lasts at least a sixteenth), keeps the tempo
marks and time signatures and writes one part per instrument, with chords where notes sound
together (notes that overlap unevenly are split and tied). A NoteSequence has no key, so the
score gets the key signature its notes fit best (Krumhansl-Schmuckler, :func:`key_signature`),
black keys spelled by it, and accidentals only where the key does not have them. Drum notes are
refused with one line:
music21 writes one MIDI instrument per part and no per-note drum, so a kit (kick, snare, hats)
would come back as a single sound; drums go out as MIDI.
"""

from __future__ import annotations

import bisect
import io
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from models import files, limits
from models.errors import CadenzaError
from models.sequence import (
    DEFAULT_QPM,
    GM_NAMES,
    Note,
    NoteSequence,
    TempoChange,
    TimeSignature,
)

MUSICXML_SUFFIXES = (".musicxml", ".xml", ".mxl")
"""File names read and written as MusicXML (``.mxl`` is the compressed form)."""
STEPS_PER_QUARTER = 4
"""The grid a written score is quantized to: sixteenth notes."""
MUSIC21_MISSING = ("MusicXML needs the music21 package, which this environment lacks: "
                   "pip install music21 (in a checkout: bash scripts/setup.sh installs it)")
_ROOTS = ("score-partwise", "score-timewise")
_NOTE_TAG = re.compile(rb"<note[\s/>]")  # a <note> element's start tag (not <notehead> ...)
_DEFAULT_VELOCITY = 80
MAX_EXPANDED_MEASURES = 4000
"""The most bars a score's repeats may play out to (more is read as written)."""
DYNAMIC_VELOCITY = {"pppp": 8, "ppp": 16, "pp": 33, "p": 49, "mp": 64, "mf": 80, "f": 96,
                    "ff": 112, "fff": 126, "ffff": 127, "sf": 112, "sfz": 112, "sffz": 120,
                    "fz": 112, "rf": 104, "rfz": 104, "fp": 96, "sfp": 112}
"""Velocities of the standard dynamics marks (MuseScore's playback values)."""

# Where a standard drum staff (MuseScore's drumset, the General MIDI percussion key) writes each
# drum: (display step and octave, x notehead) -> General MIDI drum note.
_DRUM_STAFF = {
    ("E4", False): 35, ("F4", False): 36, ("C5", False): 38, ("C5", True): 37,
    ("G5", True): 42, ("D4", True): 44, ("A5", True): 49, ("F5", True): 51, ("B5", True): 57,
    ("E5", False): 48, ("D5", False): 47, ("B4", False): 45, ("A4", False): 43,
    ("G4", False): 41, ("E5", True): 46, ("G5", False): 50, ("F5", False): 53,
}
_SNARE = 38


def is_musicxml(path: str | Path) -> bool:
    """Whether ``path`` names a MusicXML file (by its extension)."""
    return Path(path).suffix.lower() in MUSICXML_SUFFIXES


def require_music21() -> Any:
    """The music21 package (a dependency), or a one-line ``CadenzaError`` saying how to install
    it in an environment that lacks it."""
    try:
        import music21
    except ImportError as exc:
        raise CadenzaError(MUSIC21_MISSING) from exc
    return music21


# ---------------------------------------------------------------------------------- reading
def read_musicxml(source: str | Path) -> NoteSequence:
    """Read a MusicXML file (``.musicxml``, ``.xml`` or compressed ``.mxl``) into a
    NoteSequence; a one-line CadenzaError naming the file for anything unreadable."""
    path = Path(source)
    label = path.name or str(path)
    try:
        if path.is_file():
            limits.musicxml_data(path.stat().st_size, label)  # before reading it all
        data = path.read_bytes()
    except OSError as exc:
        raise CadenzaError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
    seq = musicxml_to_sequence(data, label)
    seq.name = path.stem
    return seq


def musicxml_to_sequence(data: bytes, label: str = "MusicXML data") -> NoteSequence:
    """The bytes of a MusicXML file (plain or compressed) as a NoteSequence."""
    limits.musicxml_data(len(data), label)
    if not data.strip():
        raise CadenzaError(f"{label}: empty file, not a MusicXML file")
    if data[:4] == b"PK\x03\x04":
        data = _unpack(data, label)
    root = _parse_xml(data, label)
    require_music21()
    from music21.musicxml.xmlToM21 import MusicXMLImporter

    try:
        importer = MusicXMLImporter()
        score = importer.xmlRootToScore(root)
        if getattr(score, "atSoundingPitch", True) is False:
            score = score.toSoundingPitch()  # transposing instruments sound as written for them
        return score_to_sequence(score, label, _kit_parts(root))
    except CadenzaError:
        raise
    except Exception as exc:  # noqa: BLE001 - music21 raises many kinds on odd scores
        raise CadenzaError(f"{label}: corrupt MusicXML file ({_describe(exc)})") from exc


def score_to_sequence(score: Any, label: str = "score", kits: Sequence[bool] = (),
                      qpm: float | None = None) -> NoteSequence:
    """A music21 score as a NoteSequence, read as a MusicXML file is: repeats played out (when
    music21 can), every part, metre changes in their places, a pickup bar padded so that bar
    lines fall where they are printed. ``kits``: for each part, whether it is a drum kit of
    several instruments. ``qpm``: one tempo for the whole score instead of its tempo marks."""
    return _to_sequence(_played_out(score), list(kits), label, qpm)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return text or type(exc).__name__


def _unpack(data: bytes, label: str) -> bytes:
    """The score inside a compressed MusicXML (``.mxl``) archive: the root file its
    ``META-INF/container.xml`` names (else its first ``.musicxml``/``.xml`` file), checked for
    size before it is unpacked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        member = None
        if "META-INF/container.xml" in names:
            info = archive.getinfo("META-INF/container.xml")
            limits.musicxml_data(info.file_size, label)
            container = _parse_xml(archive.read(info), label, what="container.xml")
            for rootfile in container.iter():
                if rootfile.tag.rsplit("}", 1)[-1] == "rootfile" and rootfile.get("full-path"):
                    member = rootfile.get("full-path")
                    break
        if member is None:
            member = next((n for n in names if not n.startswith("META-INF/")
                           and n.lower().endswith((".musicxml", ".xml"))), None)
        if member is None or member not in names:
            raise CadenzaError(f"{label}: corrupt MusicXML file (the archive holds no score)")
        info = archive.getinfo(member)
        limits.musicxml_data(info.file_size, label)  # the unpacked size, before unpacking
        with archive.open(info) as handle:
            score = handle.read(limits.MUSICXML_MAX_BYTES + 1)
        limits.musicxml_data(len(score), label)  # a header that lied about the size
        return score
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
            NotImplementedError, RuntimeError, OSError) as exc:
        raise CadenzaError(f"{label}: corrupt compressed MusicXML file "
                           f"({_describe(exc)})") from exc


def _parse_xml(data: bytes, label: str, what: str = "MusicXML") -> ElementTree.Element:
    """The XML tree of ``data`` (expat: no external entities, bounded entity expansion), with a
    MusicXML score's root and a bounded count of notes (counted in the bytes first, so a file
    of far too many notes is refused before it is parsed)."""
    if what == "MusicXML":
        limits.musicxml_notes(len(_NOTE_TAG.findall(data)), label)
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise CadenzaError(f"{label}: not a MusicXML file (not well-formed XML: "
                           f"{_describe(exc)})") from exc
    if what != "MusicXML":
        return root
    if root.tag not in _ROOTS:
        raise CadenzaError(f"{label}: not a MusicXML file (its root element is <{root.tag}>, "
                           f"not <score-partwise>)")
    if root.tag == "score-timewise":
        raise CadenzaError(f"{label}: a timewise MusicXML score, which cannot be read; save it "
                           f"as an ordinary (partwise) MusicXML file")
    limits.musicxml_notes(sum(1 for _ in root.iter("note")), label)
    return root


def _played_out(score: Any) -> Any:
    """``score`` with its repeats played out (see the module), or as written."""
    from music21 import repeat

    marks = list(score.recurse().getElementsByClass(repeat.RepeatMark))
    if not marks:
        return score
    parts = list(score.parts) or [score]
    measures = len(parts[0].getElementsByClass("Measure"))
    passes = 1 + sum(max(int(getattr(m, "times", None) or 2) - 1, 1) for m in marks)
    if measures * passes > MAX_EXPANDED_MEASURES:
        return score
    try:
        return score.expandRepeats()
    except Exception:  # noqa: BLE001 - a repeat music21 cannot resolve: as written
        return score


def _dynamics(flat: Any) -> tuple[list[float], list[int]]:
    """(offsets, velocities) of the dynamics marks of a flattened part, in order."""
    from music21 import dynamics

    marks: list[tuple[float, int]] = []
    for mark in flat.getElementsByClass(dynamics.Dynamic):
        velocity = DYNAMIC_VELOCITY.get(str(mark.value))
        if velocity is None and mark.volumeScalar is not None:
            velocity = int(round(float(mark.volumeScalar) * 127))
        if velocity is not None:
            marks.append((float(mark.offset), min(max(velocity, 1), 127)))
    marks.sort(key=lambda m: m[0])
    return [m[0] for m in marks], [m[1] for m in marks]


def _kit_parts(root: ElementTree.Element) -> list[bool]:
    """For each ``<part>`` in order: whether its entry in the part list names more than one
    instrument (a drum kit, whose drums music21 does not tell apart)."""
    counts = {entry.get("id"): len(entry.findall("score-instrument"))
              for entry in root.iter("score-part")}
    return [counts.get(part.get("id"), 0) > 1 for part in root.findall("part")]


def _tempo_map(score: Any, shift: float) -> list[tuple[float, float]]:
    """(quarter-note offset, qpm) of every tempo mark, the first at 0."""
    marks: list[tuple[float, float]] = []
    for start, _end, mark in score.metronomeMarkBoundaries():
        qpm = mark.getQuarterBPM() if mark is not None else None
        if qpm is None or not math.isfinite(qpm) or qpm <= 0:
            continue
        offset = float(start) + shift if start > 0 else 0.0
        qpm = min(max(float(qpm), 1.0), 10_000.0)
        if marks and marks[-1][0] == offset:
            marks[-1] = (offset, qpm)
        elif not marks or marks[-1][1] != qpm:
            marks.append((offset, qpm))
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0.0, DEFAULT_QPM))
    return marks


class _Clock:
    """Quarter-note offsets to seconds through a tempo map."""

    def __init__(self, marks: list[tuple[float, float]]) -> None:
        self.marks = marks
        self.starts = [q for q, _ in marks]
        self.seconds = [0.0]
        for (q0, qpm), (q1, _) in zip(marks, marks[1:], strict=False):
            self.seconds.append(self.seconds[-1] + (q1 - q0) * 60.0 / qpm)

    def __call__(self, quarters: float) -> float:
        i = max(bisect.bisect_right(self.starts, quarters) - 1, 0)
        q0, qpm = self.marks[i]
        return self.seconds[i] + (quarters - q0) * 60.0 / qpm


def _to_sequence(score: Any, kits: list[bool], label: str,
                 qpm: float | None = None) -> NoteSequence:
    from music21 import instrument as m21instrument
    from music21 import meter as m21meter
    from music21 import note as m21note

    parts = list(score.parts) or [score]
    first = parts[0]
    measures = list(first.getElementsByClass("Measure"))
    shift = float(measures[0].paddingLeft) if measures else 0.0
    marks = _tempo_map(score, shift) if qpm is None else [(0.0, float(qpm))]
    clock = _Clock(marks)
    seq = NoteSequence(tempos=[TempoChange(clock(q), qpm) for q, qpm in marks])
    for ts in first.recurse().getElementsByClass(m21meter.TimeSignature):
        offset = float(ts.getOffsetInHierarchy(first))
        time = clock(offset + shift) if offset > 0 else 0.0
        if seq.time_signatures and seq.time_signatures[-1].time == time:
            seq.time_signatures.pop()
        if not seq.time_signatures or (seq.time_signatures[-1].numerator,
                                       seq.time_signatures[-1].denominator) != (
                                           ts.numerator, ts.denominator):
            seq.time_signatures.append(TimeSignature(time, int(ts.numerator),
                                                     int(ts.denominator)))
    end_limit = limits.MIDI_MAX_SECONDS * 6  # the MIDI reader's "corrupt" bound
    for index, part in enumerate(parts):
        inst = part.getInstrument(returnDefault=True)
        program = inst.midiProgram if inst is not None and inst.midiProgram is not None else 0
        program = min(max(int(program), 0), 127)
        kit = isinstance(inst, m21instrument.UnpitchedPercussion)
        one_drum = kit and not (index < len(kits) and kits[index])  # a lone snare, say
        part_drum = getattr(inst, "percMapPitch", None) if one_drum else None
        name = (part.partName or (inst.instrumentName if inst is not None else "") or "").strip()
        if name:
            seq.instrument_names[index] = name
        tied: dict[tuple[int, bool], tuple[Note, float]] = {}  # open ties: note, end
        flat = part.flatten()
        marked_at, marked = _dynamics(flat)
        for element in flat.notes:
            if element.duration.isGrace:
                continue
            start_q = float(element.offset) + shift
            end_q = start_q + float(element.duration.quarterLength)
            start, end = clock(start_q), clock(end_q)
            if not (math.isfinite(end) and end <= end_limit):
                raise CadenzaError(f"{label}: corrupt MusicXML file (notes "
                                   f"{end / 3600:.1f} hours in)")
            velocity = element.volume.velocity if element.volume is not None else None
            if velocity is None:
                last = bisect.bisect_right(marked_at, float(element.offset) + 1e-9) - 1
                velocity = marked[last] if last >= 0 else _DEFAULT_VELOCITY
            velocity = min(max(int(velocity), 1), 127)
            members = list(element.notes) if element.isChord else [element]
            for member in members:
                if isinstance(member, m21note.Unpitched) or kit:
                    drum = True
                    pitch = part_drum if part_drum is not None and isinstance(
                        member, m21note.Unpitched) else _staff_drum(member)
                else:
                    drum, pitch = False, int(round(member.pitch.ps))
                    if not 0 <= pitch <= 127:
                        continue
                key = (int(pitch), drum)
                tie = getattr(member.tie, "type", None)  # a chord's notes: each its own
                held = tied.get(key)
                if tie in ("stop", "continue") and held is not None and abs(
                        held[1] - start_q) < 1e-6:
                    held[0].end = end  # the same note, held on over a tie
                    tied[key] = (held[0], end_q)
                else:
                    note = Note(int(pitch), velocity, start, end, program, drum, index)
                    seq.notes.append(note)
                    tied[key] = (note, end_q)
                if tie not in ("start", "continue"):
                    tied.pop(key, None)
    seq.sort()
    return seq


def _staff_drum(n: Any) -> int:
    """The General MIDI drum that an unpitched note's place on a drum staff stands for."""
    try:
        place = n.displayName if hasattr(n, "displayName") else n.pitch.nameWithOctave
    except Exception:  # noqa: BLE001 - an unpitched note without a place
        return _SNARE
    place = str(place).replace("-", "").replace("#", "")
    cross = str(getattr(n, "notehead", "normal")) in ("x", "cross", "circle-x")
    return _DRUM_STAFF.get((place, cross), _DRUM_STAFF.get((place, not cross), _SNARE))


# ---------------------------------------------------------------------------------- writing
def write_musicxml(seq: NoteSequence, path: str | Path) -> None:
    """Write ``seq`` as MusicXML at ``path`` (compressed when it ends in ``.mxl``): written
    beside it, then renamed (:mod:`models.files`), so a failure leaves the old file as it was."""
    path = Path(path)
    data = musicxml_bytes(seq, compressed=path.suffix.lower() == ".mxl", label=path.name,
                          title=seq.name or path.stem)
    files.write_bytes(path, data)


def musicxml_bytes(seq: NoteSequence, compressed: bool = False, label: str = "",
                   title: str = "") -> bytes:
    """The MusicXML file of ``seq`` (a ``.mxl`` archive when ``compressed``); see the module's
    notes on quantization. A one-line CadenzaError for drums and for what cannot be written."""
    label = label or seq.name or "MusicXML"
    if any(n.is_drum for n in seq.notes):
        raise CadenzaError(f"{label}: cannot write drums as MusicXML (music21 keeps one sound "
                           f"per part, so a kit would not survive); export drums as MIDI")
    for n in seq.notes:
        if not (0 <= n.pitch <= 127 and math.isfinite(n.start) and math.isfinite(n.end)
                and 0 <= n.start <= n.end):
            raise CadenzaError(f"{label}: cannot write a note of pitch {n.pitch} from "
                               f"{n.start!r} s to {n.end!r} s")
    if len(seq.notes) > limits.MUSICXML_MAX_NOTES:
        raise CadenzaError(f"{label}: {len(seq.notes):,} notes, more than the "
                           f"{limits.MUSICXML_MAX_NOTES:,} a MusicXML file may have")
    end = _Grid(seq.tempos).step(seq.total_time) / STEPS_PER_QUARTER
    if end > limits.MUSICXML_MAX_QUARTERS:
        raise CadenzaError(f"{label}: {end:,.0f} quarter notes long, more than the "
                           f"{limits.MUSICXML_MAX_QUARTERS:,} a MusicXML file may have")
    require_music21()
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    try:
        score = _score(seq, title or seq.name or "Cadenza")
        exporter = GeneralObjectExporter(score)
        exporter.makeNotation = False  # done in _score, once, without copying the score
        xml = exporter.parse()
    except Exception as exc:  # noqa: BLE001 - music21 raises many kinds
        raise CadenzaError(f"{label}: cannot write MusicXML ({_describe(exc)})") from exc
    # music21 names itself the composer of a score without one: the tune is not its own.
    xml = re.sub(rb"\s*<creator type=\"composer\">Music21</creator>", b"", xml, count=1)
    if not compressed:
        return xml
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.recordare.musicxml")
        archive.writestr("META-INF/container.xml", _CONTAINER)
        archive.writestr("score.musicxml", xml)
    return buffer.getvalue()


_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container>
  <rootfiles>
    <rootfile full-path="score.musicxml" media-type="application/vnd.recordare.musicxml+xml"/>
  </rootfiles>
</container>
"""


class _Grid:
    """Seconds to sixteenth steps through a sequence's tempo map."""

    def __init__(self, tempos: list[TempoChange]) -> None:
        ordered = sorted((t for t in tempos if math.isfinite(t.qpm) and t.qpm > 0
                          and math.isfinite(t.time) and t.time >= 0), key=lambda t: t.time)
        if not ordered or ordered[0].time > 0:
            ordered.insert(0, TempoChange(0.0, ordered[0].qpm if ordered else DEFAULT_QPM))
        self.tempos = ordered
        self.times = [t.time for t in ordered]
        self.quarters = [0.0]
        for a, b in zip(ordered, ordered[1:], strict=False):
            self.quarters.append(self.quarters[-1] + (b.time - a.time) * a.qpm / 60.0)

    def step(self, seconds: float) -> int:
        i = max(bisect.bisect_right(self.times, seconds) - 1, 0)
        t = self.tempos[i]
        quarters = self.quarters[i] + (seconds - t.time) * t.qpm / 60.0
        return round(quarters * STEPS_PER_QUARTER)


def _score(seq: NoteSequence, title: str) -> Any:
    from music21 import instrument as m21instrument
    from music21 import key as m21key
    from music21 import metadata as m21metadata
    from music21 import meter as m21meter
    from music21 import stream as m21stream
    from music21 import tempo as m21tempo

    grid = _Grid(seq.tempos)
    score = m21stream.Score()
    score.insert(0, m21metadata.Metadata(title=title))
    groups: dict[int, list[Note]] = {}
    for n in seq.notes:
        groups.setdefault(n.instrument, []).append(n)
    if not groups:
        groups[0] = []
    signatures = sorted(seq.time_signatures, key=lambda t: t.time) or [TimeSignature(0.0)]
    sharps = key_signature(seq.notes)
    for number, (instrument_number, notes) in enumerate(sorted(groups.items())):
        part = m21stream.Part()
        program = notes[0].program if notes else 0
        try:
            inst = m21instrument.instrumentFromMidiProgram(int(program))
        except Exception:  # noqa: BLE001 - a program music21 has no class for
            inst = m21instrument.Instrument()
            inst.midiProgram = int(program)
        name = seq.instrument_names.get(instrument_number) or GM_NAMES[int(program) % 128]
        inst.partName = inst.instrumentName = name
        part.partName = name
        part.insert(0, inst)
        signature = m21key.KeySignature(sharps)
        part.insert(0, signature)
        bars: list[tuple[int, int]] = []  # (step, steps per bar) of each time signature
        for ts in signatures:
            step = 0 if ts.time <= 0 else grid.step(ts.time)
            if bars and step <= bars[-1][0]:
                continue
            meter = m21meter.TimeSignature(f"{int(ts.numerator)}/{int(ts.denominator)}")
            part.insert(step / STEPS_PER_QUARTER, meter)
            bars.append((step, max(1, round(meter.barDuration.quarterLength
                                            * STEPS_PER_QUARTER))))
        if number == 0:
            placed = set()
            for t in sorted(grid.tempos, key=lambda t: t.time):
                offset = grid.step(t.time) / STEPS_PER_QUARTER
                if offset in placed:
                    continue
                placed.add(offset)
                part.insert(offset, m21tempo.MetronomeMark(number=round(t.qpm, 2)))
        for offset, element in _slices(notes, grid, bars, flats=sharps < 0):
            part.insert(offset, element)
        part.makeMeasures(inPlace=True)
        part.makeTies(inPlace=True)  # a note or rest over a bar line: split (and tied)
        part.splitAtDurations(recurse=True)  # a note of 5 sixteenths: a quarter tied to one
        from music21.stream.makeNotation import makeAccidentalsInMeasureStream

        makeAccidentalsInMeasureStream(part, useKeySignature=signature)  # none the key has
        _beam(part)
        score.insert(0, part)
    return score


def _beam(part: Any) -> None:
    """Beam each full bar by its time signature (music21's ``makeBeams`` looks the signature
    up again for every bar, which takes minutes for a long score)."""
    from music21 import beam as m21beam
    from music21 import stream as m21stream

    signature = None
    for measure in part.getElementsByClass(m21stream.Measure):
        signature = measure.timeSignature or signature
        group = list(measure.notesAndRests)
        if signature is None or len(group) < 2:
            continue
        if sum(n.duration.quarterLength for n in group) != signature.barDuration.quarterLength:
            continue
        try:
            beams = signature.getBeams(group, measureStartOffset=0.0)
        except Exception:  # noqa: BLE001 - durations the signature cannot beam: left plain
            continue
        for n, b in zip(group, beams, strict=False):
            n.beams = b if b is not None else m21beam.Beams()


def _slices(notes: list[Note], grid: _Grid, bars: list[tuple[int, int]],
            flats: bool = False) -> list[tuple[float, Any]]:
    """Notes as one voice of notes, chords and rests on the sixteenth grid, from 0 to the end of
    the last bar (``bars``: (step, steps per bar) where each time signature starts): cut
    wherever a note starts or ends, and tied across the cuts."""
    from music21 import chord as m21chord
    from music21 import note as m21note
    from music21 import pitch as m21pitch
    from music21 import tie as m21tie

    spans: dict[tuple[int, int], int] = {}
    for n in notes:
        a = grid.step(n.start)
        b = max(grid.step(n.end), a + 1)
        key = (a, int(n.pitch))
        spans[key] = max(spans.get(key, b), b)
    # A pitch struck again while it sounds ends there.
    by_pitch: dict[int, list[list[int]]] = {}
    for (a, p), b in sorted(spans.items()):
        runs = by_pitch.setdefault(p, [])
        if runs and runs[-1][1] > a:
            runs[-1][1] = a
        runs.append([a, b])
    starting: dict[int, list[tuple[int, int, int]]] = {}
    for p, runs in by_pitch.items():
        for s, e in runs:
            starting.setdefault(s, []).append((p, s, e))
    last = max((e for runs in by_pitch.values() for _s, e in runs), default=1)  # a bar at least
    cuts = sorted({0, _bar_end(bars, last), *starting,
                   *(e for runs in by_pitch.values() for _s, e in runs)})
    out: list[tuple[float, Any]] = []
    active: dict[int, tuple[int, int]] = {}  # pitch -> its run (a sweep over the cuts)
    for a, b in zip(cuts, cuts[1:], strict=False):
        active = {p: run for p, run in active.items() if run[1] > a}
        for p, s, e in starting.get(a, ()):
            active[p] = (s, e)
        length = (b - a) / STEPS_PER_QUARTER
        if not active:
            out.append((a / STEPS_PER_QUARTER, m21note.Rest(quarterLength=length)))
            continue
        # pitch, tied from before, tied on
        sounding = sorted((p, s < a, b < e) for p, (s, e) in active.items())
        if len(sounding) == 1:
            p, before, after = sounding[0]
            element = m21note.Note(_spelled(m21pitch, p, flats), quarterLength=length)
            element.tie = _tie(m21tie, before, after)
        else:
            element = m21chord.Chord([_spelled(m21pitch, p, flats) for p, _, _ in sounding],
                                     quarterLength=length)
            for member, (_p, before, after) in zip(element.notes, sounding, strict=True):
                member.tie = _tie(m21tie, before, after)
        out.append((a / STEPS_PER_QUARTER, element))
    return out


def _bar_end(bars: list[tuple[int, int]], step: int) -> int:
    """The first bar line at or after ``step`` (a step on a bar line is its own end)."""
    start, length = bars[0]
    for next_start, next_length in bars[1:]:
        if next_start > step:
            break
        start, length = next_start, next_length
    bars_in = -(-(step - start) // length)
    return start + max(bars_in, 0) * length


def _spelled(m21pitch: Any, midi: int, flats: bool) -> Any:
    """A pitch spelled as the key signature would: black keys as flats in a flat key, as sharps
    otherwise."""
    names = _FLAT_NAMES if flats else _SHARP_NAMES
    return m21pitch.Pitch(f"{names[midi % 12]}{midi // 12 - 1}")


_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")
# Krumhansl and Kessler's key profiles (C major, C minor): how well each pitch class fits.
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
_MAJOR_SHARPS = (0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5)
"""The key signature of each major key by its tonic's pitch class (sharps > 0, flats < 0)."""


def key_signature(notes: list[Note]) -> int:
    """The key signature (sharps > 0, flats < 0) of the key that the pitched notes fit best,
    weighted by length (Krumhansl-Schmuckler): a NoteSequence carries no key, so a written
    score gets the likeliest one. 0 (C major) without pitched notes."""
    weights = [0.0] * 12
    for n in notes:
        if not n.is_drum:
            weights[n.pitch % 12] += max(n.end - n.start, 0.0)
    if not any(weights):
        return 0
    best, sharps = -2.0, 0
    for tonic in range(12):
        for profile, relative_major in ((_MAJOR_PROFILE, tonic), (_MINOR_PROFILE,
                                                                   (tonic + 3) % 12)):
            fit = _correlation(weights, [profile[(pc - tonic) % 12] for pc in range(12)])
            if fit > best + 1e-12:
                best, sharps = fit, _MAJOR_SHARPS[relative_major]
    return sharps


def _correlation(a: list[float], b: list[float]) -> float:
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    da, db = [x - mean_a for x in a], [y - mean_b for y in b]
    spread = math.sqrt(sum(x * x for x in da) * sum(y * y for y in db))
    return sum(x * y for x, y in zip(da, db, strict=True)) / spread if spread else 0.0


def _tie(m21tie: Any, before: bool, after: bool) -> Any:
    if before and after:
        return m21tie.Tie("continue")
    if before:
        return m21tie.Tie("stop")
    if after:
        return m21tie.Tie("start")
    return None
