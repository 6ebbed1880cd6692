"""Audio files: round trips through real WAV and FLAC files, resampling, mixdown, bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from models.audio_io import Audio, load_mono, read_audio, write_audio
from models.errors import CadenzaError


def sine(freq: float, sample_rate: int, seconds: float, channels: int = 1,
         amp: float = 0.5) -> Audio:
    t = np.arange(round(sample_rate * seconds)) / sample_rate
    cols = [amp * np.sin(2 * np.pi * freq * (k + 1) * t) / (k + 1) for k in range(channels)]
    return Audio(np.stack(cols, axis=1).astype(np.float32), sample_rate)


def peak_frequency(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sample_rate)[np.argmax(spectrum)])


# (extension, subtype, largest error allowed after the round trip)
FORMATS = [
    (".wav", "PCM_16", 1 / 2**15),
    (".wav", "PCM_24", 1 / 2**23),
    (".wav", "FLOAT", 0.0),
    (".wav", "PCM_U8", 1 / 2**7),
    (".flac", "PCM_16", 1 / 2**15),
    (".flac", "PCM_24", 1 / 2**23),
]


@pytest.mark.parametrize(("ext", "subtype", "tolerance"), FORMATS)
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_round_trip(tmp_path: Path, ext: str, subtype: str, tolerance: float,
                    channels: int) -> None:
    audio = sine(440.0, 22050, 0.25, channels)
    path = tmp_path / f"tone{ext}"
    write_audio(path, audio, subtype=subtype)
    assert soundfile.info(str(path)).subtype == subtype  # really written in that format
    back = read_audio(path)
    assert back.sample_rate == 22050
    assert back.samples.dtype == np.float32
    assert back.samples.shape == (audio.frames, channels)
    assert np.max(np.abs(back.samples - audio.samples)) <= tolerance * 1.01


@pytest.mark.parametrize("sample_rate", [8000, 11025, 22050, 44100, 96000, 7350])
def test_odd_sample_rates(tmp_path: Path, sample_rate: int) -> None:
    audio = sine(300.0, sample_rate, 0.1, channels=2)
    for ext in (".wav", ".flac"):
        path = tmp_path / f"x{ext}"
        write_audio(path, audio)
        back = read_audio(path)
        assert back.sample_rate == sample_rate and back.frames == audio.frames
        assert back.duration == pytest.approx(0.1, abs=1 / sample_rate)


def test_pcm_clips_and_float_keeps_range(tmp_path: Path) -> None:
    audio = Audio(np.array([[-2.0], [-0.5], [0.5], [1.5]], dtype=np.float32), 8000)
    write_audio(tmp_path / "pcm.wav", audio, subtype="PCM_24")
    assert read_audio(tmp_path / "pcm.wav").samples[:, 0] == pytest.approx(
        [-1.0, -0.5, 0.5, 1.0], abs=1e-6)
    write_audio(tmp_path / "float.wav", audio, subtype="FLOAT")
    assert read_audio(tmp_path / "float.wav").samples[:, 0].tolist() == [-2.0, -0.5, 0.5, 1.5]


def test_resampling_keeps_the_frequency() -> None:
    audio = sine(440.0, 22050, 1.0)
    out = audio.resampled(16000)
    assert out.sample_rate == 16000
    assert abs(out.frames - 16000) <= 1
    assert peak_frequency(out.samples[:, 0], 16000) == pytest.approx(440.0, abs=1.5)
    # Level survives too (a very-high-quality resampler leaves the passband alone).
    rms_in = np.sqrt(np.mean(audio.samples[2000:-2000] ** 2))
    rms_out = np.sqrt(np.mean(out.samples[2000:-2000] ** 2))
    assert rms_out == pytest.approx(rms_in, rel=1e-3)
    up = audio.resampled(96000)
    assert peak_frequency(up.samples[:, 0], 96000) == pytest.approx(440.0, abs=1.5)


def test_resampling_keeps_channels_apart() -> None:
    left = sine(440.0, 44100, 0.5).samples[:, 0]
    right = sine(1000.0, 44100, 0.5).samples[:, 0]
    out = Audio(np.stack([left, right], axis=1), 44100).resampled(16000)
    assert out.channels == 2
    assert peak_frequency(out.samples[:, 0], 16000) == pytest.approx(440.0, abs=3)
    assert peak_frequency(out.samples[:, 1], 16000) == pytest.approx(1000.0, abs=3)


def test_mono_mixdown() -> None:
    samples = np.array([[1.0, 0.0, -0.5], [0.5, 0.5, 0.5]], dtype=np.float32)
    mono = Audio(samples, 8000).mono()
    assert mono.channels == 1 and mono.samples.dtype == np.float32
    assert mono.samples[:, 0] == pytest.approx([1 / 6, 0.5])


def test_load_mono_resamples_and_fits_length(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    write_audio(path, sine(440.0, 44100, 0.5, channels=2), subtype="PCM_24")
    x = load_mono(path, 16000)
    assert x.ndim == 1 and x.dtype == np.float32 and abs(len(x) - 8000) <= 1
    assert peak_frequency(x, 16000) == pytest.approx(440.0, abs=3)
    padded = load_mono(path, 16000, seconds=1.0)
    assert padded.shape == (16000,) and not padded[8100:].any() and padded[:7900].any()
    cut = load_mono(path, 16000, seconds=0.25)
    assert cut.shape == (4000,)
    assert cut == pytest.approx(padded[:4000])


def test_normalizing() -> None:
    audio = sine(440.0, 16000, 0.5, amp=0.1)
    assert np.max(np.abs(audio.normalized(0.9).samples)) == pytest.approx(0.9, rel=1e-6)
    level = audio.loudness_normalized(-20.0).samples
    assert 20 * np.log10(np.sqrt(np.mean(level.astype(np.float64) ** 2))) == pytest.approx(
        -20.0, abs=0.01)
    capped = audio.loudness_normalized(0.0, max_peak=0.8).samples  # 0 dB RMS would clip
    assert np.max(np.abs(capped)) == pytest.approx(0.8, rel=1e-5)
    silence = Audio(np.zeros((100, 1), np.float32), 16000)
    assert not silence.normalized().samples.any()
    assert not silence.loudness_normalized().samples.any()


def test_audio_type_checks() -> None:
    a = Audio(np.zeros(10), 8000)
    assert a.samples.shape == (10, 1) and a.samples.dtype == np.float32
    assert a.duration == pytest.approx(10 / 8000)
    with pytest.raises(ValueError, match="sample rate"):
        Audio(np.zeros(10), 0)


# ------------------------------------------------------------------------------ bad input
def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(CadenzaError, match=r"^empty\.wav: empty file"):
        read_audio(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CadenzaError, match=r"gone\.wav: cannot read"):
        read_audio(tmp_path / "gone.wav")


def test_text_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not a sound\n" * 20)
    with pytest.raises(CadenzaError, match=r"^notes\.wav: not an audio file"):
        read_audio(path)


def test_midi_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "song.wav"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00")
    with pytest.raises(CadenzaError, match="not an audio file"):
        read_audio(path)


def test_truncated_wav(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    write_audio(path, sine(440.0, 16000, 0.5))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CadenzaError, match=r"^cut\.wav: truncated WAV file"):
        read_audio(path)
    path.write_bytes(data[:30])  # cut inside the header
    with pytest.raises(CadenzaError, match=r"^cut\.wav: "):
        read_audio(path)


def test_truncated_flac(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    write_audio(path, sine(440.0, 16000, 1.0, channels=2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CadenzaError, match=r"^cut\.flac: truncated or corrupt"):
        read_audio(path)


def test_nan_samples(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    samples = sine(440.0, 16000, 0.1).samples
    samples[100, 0] = np.nan
    soundfile.write(str(path), samples, 16000, subtype="FLOAT")  # written behind our back
    with pytest.raises(CadenzaError, match=r"^nan\.wav: .*NaN or infinite"):
        read_audio(path)
    samples[100, 0] = np.inf
    with pytest.raises(CadenzaError, match="NaN or infinite"):
        write_audio(tmp_path / "inf.wav", Audio(samples, 16000), subtype="FLOAT")


def test_reading_only_the_head(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    x = sine(440, 22050, 3.0, channels=2).samples.copy()
    x[-100:] = np.nan  # past the head: never read, so never refused
    soundfile.write(path, x, 22050, subtype="FLOAT")
    head = read_audio(path, seconds=1.0)
    assert head.sample_rate == 22050 and head.samples.shape == (22050, 2)
    np.testing.assert_array_equal(head.samples, x[:22050])
    assert read_audio(path, seconds=1e-9).frames == 1
    for seconds in (None, 10.0):  # the whole file
        with pytest.raises(CadenzaError, match="NaN"):
            read_audio(path, seconds=seconds)


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "nothing.wav"
    soundfile.write(str(path), np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(CadenzaError, match=r"nothing\.wav: .*zero frames"):
        read_audio(path)


def test_zero_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    write_audio(path, sine(440.0, 16000, 0.1))
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"fmt " and struct.unpack("<L", data[24:28])[0] == 16000
    data[24:28] = struct.pack("<L", 0)
    path.write_bytes(bytes(data))
    with pytest.raises(CadenzaError, match=r"zero\.wav: .*zero sample rate"):
        read_audio(path)


def test_unsupported_write_formats(tmp_path: Path) -> None:
    audio = sine(440.0, 16000, 0.1)
    with pytest.raises(CadenzaError, match=r"out\.opus: cannot write audio as '\.opus'"):
        write_audio(tmp_path / "out.opus", audio)
    with pytest.raises(CadenzaError, match="FLAC cannot hold FLOAT"):
        write_audio(tmp_path / "out.flac", audio, subtype="FLOAT")
    with pytest.raises(CadenzaError, match=r"dir\.wav: the folder .* does not exist"):
        write_audio(tmp_path / "no" / "such" / "dir.wav", audio)
    with pytest.raises(CadenzaError, match="MP3 cannot hold 96000 Hz"):
        write_audio(tmp_path / "hi.mp3", sine(440.0, 96000, 0.1))
    with pytest.raises(CadenzaError, match="unknown audio format 'wma'"):
        write_audio(tmp_path / "x.wav", audio, format="wma")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written left


# Every container Cadenza offers, through the bundled libsndfile: a real file each way.
# (extension, subtype written, subtype libsndfile reports, largest error, frames kept exactly)
ALL_FORMATS = [
    (".wav", "PCM_16", "PCM_16", 1 / 2**15, True),
    (".flac", "PCM_24", "PCM_24", 1 / 2**23, True),
    (".aiff", "PCM_24", "PCM_24", 1 / 2**23, True),
    (".aif", "FLOAT", "FLOAT", 0.0, True),
    (".ogg", "PCM_16", "VORBIS", None, False),
    (".mp3", "PCM_24", "MPEG_LAYER_III", None, False),
]


def test_the_bundled_libsndfile_has_every_offered_format() -> None:
    from models.audio_io import SUBTYPES

    available = soundfile.available_formats()
    for container, subtypes in SUBTYPES.items():
        assert container in available
        assert set(subtypes) <= set(soundfile.available_subtypes(container))


@pytest.mark.parametrize(("ext", "subtype", "written", "tolerance", "exact"), ALL_FORMATS)
@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_round_trip_of_every_format(tmp_path: Path, ext: str, subtype: str, written: str,
                                    tolerance: float | None, exact: bool,
                                    sample_rate: int) -> None:
    audio = sine(440.0, sample_rate, 0.5, channels=2)
    path = tmp_path / f"tone{ext}"
    write_audio(path, audio, subtype=subtype)
    info = soundfile.info(str(path))
    assert info.subtype == written and info.samplerate == sample_rate
    assert info.format == {".aif": "AIFF", ".aiff": "AIFF"}.get(ext, ext[1:].upper())
    back = read_audio(path)
    assert back.sample_rate == sample_rate and back.channels == 2
    if exact:
        assert back.frames == audio.frames
        assert np.max(np.abs(back.samples - audio.samples)) <= tolerance * 1.01
    else:  # lossy: the same tone, about as loud, about as long
        assert abs(back.frames - audio.frames) <= 0.05 * sample_rate
        mid = back.samples[sample_rate // 10: sample_rate // 3, 0]
        assert peak_frequency(mid, sample_rate) == pytest.approx(440.0, abs=5.0)
        rms_in = np.sqrt(np.mean(audio.samples[:, 0] ** 2))
        assert np.sqrt(np.mean(mid**2)) == pytest.approx(rms_in, rel=0.1)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temporary file is gone


def test_high_rates_and_depths_where_the_format_holds_them(tmp_path: Path) -> None:
    audio = sine(1000.0, 96000, 0.2, channels=2)
    for ext in (".wav", ".flac", ".aiff", ".ogg"):
        for subtype in ("PCM_16", "PCM_24", "FLOAT"):
            if ext == ".flac" and subtype == "FLOAT":
                continue
            path = tmp_path / f"hi-{subtype}{ext}"
            write_audio(path, audio, subtype=subtype)
            assert read_audio(path).sample_rate == 96000


def test_writing_replaces_atomically_and_keeps_the_extension_format(tmp_path: Path) -> None:
    path = tmp_path / "take.flac"
    write_audio(path, sine(440.0, 22050, 0.2))
    assert soundfile.info(str(path)).format == "FLAC"
    write_audio(path, sine(220.0, 22050, 0.3), subtype="PCM_24")  # over an existing file
    info = soundfile.info(str(path))
    assert (info.format, info.subtype, info.frames) == ("FLAC", "PCM_24", 6615)
    # A failed write (NaN) leaves the old file as it was and nothing beside it.
    before = path.read_bytes()
    bad = Audio(np.full((100, 1), np.nan, np.float32), 22050)
    with pytest.raises(CadenzaError, match="NaN"):
        write_audio(path, bad)
    assert path.read_bytes() == before
    # An explicit format wins over the extension.
    odd = tmp_path / "noext"
    write_audio(odd, sine(440.0, 22050, 0.1), format="aiff")
    assert soundfile.info(str(odd)).format == "AIFF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noext", "take.flac"]


def test_audio_bytes_is_a_whole_file() -> None:
    import io

    from models.audio_io import audio_bytes

    audio = sine(440.0, 48000, 0.25, channels=2)
    for fmt in ("wav", "FLAC", "ogg", "mp3", "aiff"):
        data = audio_bytes(audio, fmt, "PCM_24")
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        assert rate == 48000 and samples.shape[1] == 2
    assert audio_bytes(audio)[:4] == b"RIFF"


# ---------------------------------------------------------------------- acid chunk (tempo)
def _loop_info(path: Path) -> tuple[int, int, int, int, float, int] | None:
    """libsndfile's own reading of the file's acid chunk (``SFC_GET_LOOP_INFO``: time signature,
    loop mode, beats, BPM, root key), the way Audacity and other libsndfile programs see it."""
    with soundfile.SoundFile(str(path)) as f:
        size = 44  # sizeof(SF_LOOP_INFO)
        buffer = soundfile._ffi.new(f"char[{size}]")
        if not soundfile._snd.sf_command(f._file, 0x10E0, buffer, size):
            return None
        return struct.unpack("<hhiifi", bytes(soundfile._ffi.buffer(buffer, 20)))


def _chunks(data: bytes) -> list[bytes]:
    out, pos = [], 12
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        out.append(kind)
        pos += 8 + size + (size & 1)
    return out


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_a_wav_carries_its_tempo_and_root_note_in_an_acid_chunk(tmp_path: Path,
                                                                subtype: str) -> None:
    from models.audio_io import AcidInfo

    audio = sine(261.6, 48000, 2.5, channels=2).with_acid(
        AcidInfo(tempo=96.0, root_note=60, one_shot=True))
    path = tmp_path / "morph.wav"
    write_audio(path, audio, subtype=subtype)
    data = path.read_bytes()
    assert _chunks(data)[-2:] == [b"acid", b"data"]  # before the audio
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8  # the RIFF size grew with it
    back = read_audio(path)
    assert back.acid == AcidInfo(tempo=96.0, root_note=60, one_shot=True, beats=4,
                                 meter=(4, 4))  # 2.5 s at 96 BPM: 4 beats
    assert back.frames == audio.frames and back.channels == 2
    tolerance = 0.0 if subtype == "FLOAT" else 2.0 ** -14
    np.testing.assert_allclose(back.samples, audio.samples, atol=tolerance)
    # libsndfile reads the same: 4/4, one-shot (SF_LOOP_NONE = 800), 4 beats, 96 BPM, key 60
    assert _loop_info(path) == (4, 4, 800, 4, 96.0, 60)


def test_a_stretchable_take_and_a_pitchless_one(tmp_path: Path) -> None:
    from models.audio_io import AcidInfo

    path = tmp_path / "take.wav"
    write_audio(path, sine(440, 44100, 10.0).with_acid(AcidInfo(tempo=128.5)))
    assert read_audio(path).acid == AcidInfo(tempo=128.5, beats=21)
    num, den, mode, beats, bpm, root = _loop_info(path)
    assert (num, den, beats, bpm, root) == (4, 4, 21, 128.5, -1)  # no root note
    assert mode == 801  # SF_LOOP_FORWARD: a loop the DAW may stretch to its tempo
    # the chunk survives resampling and the other transforms, and goes to stdout too
    audio = read_audio(path).resampled(48000).mono().normalized()
    assert audio.acid == read_audio(path).acid
    from models.audio_io import audio_bytes

    piped = tmp_path / "piped.wav"
    piped.write_bytes(audio_bytes(audio))
    assert read_audio(piped).acid == audio.acid


def test_without_a_tempo_the_files_are_as_before(tmp_path: Path) -> None:
    """No acid chunk unless the audio has one: the same bytes libsndfile writes; other
    containers have no place for it and are written as they always were."""
    from models.audio_io import AcidInfo, audio_bytes

    audio = sine(440, 16000, 1.0)
    path = tmp_path / "plain.wav"
    write_audio(path, audio)
    direct = tmp_path / "direct.wav"
    soundfile.write(str(direct), audio.samples, 16000, subtype="PCM_16", format="WAV")
    assert path.read_bytes() == direct.read_bytes() == audio_bytes(audio)
    assert read_audio(path).acid is None and _loop_info(path) is None
    tagged = audio.with_acid(AcidInfo(tempo=96.0))
    for ext in (".flac", ".aiff"):
        write_audio(tmp_path / f"a{ext}", tagged)
        assert b"acid" not in (tmp_path / f"a{ext}").read_bytes()
        assert read_audio(tmp_path / f"a{ext}").acid is None


def test_a_broken_acid_chunk_is_ignored_and_a_chunk_after_the_audio_is_read(
        tmp_path: Path) -> None:
    from models.audio_io import AcidInfo

    audio = sine(440, 16000, 1.0)
    plain = tmp_path / "plain.wav"
    write_audio(plain, audio)
    data = plain.read_bytes()
    after = tmp_path / "after.wav"  # as some editors write it: the chunk at the end
    chunk = AcidInfo(tempo=140.0, root_note=45).chunk(1.0)
    grown = data + chunk
    after.write_bytes(grown[:4] + struct.pack("<I", len(grown) - 8) + grown[8:])
    assert read_audio(after).acid == AcidInfo(tempo=140.0, root_note=45, beats=2)
    nan = tmp_path / "nan.wav"  # a NaN tempo: no tempo, the audio still reads
    body = bytearray(chunk)
    body[-4:] = struct.pack("<f", float("nan"))
    grown = data + bytes(body)
    nan.write_bytes(grown[:4] + struct.pack("<I", len(grown) - 8) + grown[8:])
    back = read_audio(nan)
    assert back.acid is None and back.frames == audio.frames
    with pytest.raises(ValueError):
        AcidInfo(tempo=0.0)
    with pytest.raises(ValueError):
        AcidInfo(tempo=float("inf"))
