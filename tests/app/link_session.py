"""Run by tests/app/test_link.py inside a private network namespace (loopback only): Cadenza's
:class:`app.link.LinkSync` and test-side Link peers (``link.Link``, as another app would be).
Prints one JSON object of what was seen; never run outside such a namespace."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import link  # noqa: E402

from app.link import LinkSync  # noqa: E402
from app.transport import Transport  # noqa: E402
from models.sequence import Note, NoteSequence  # noqa: E402


def wait(predicate, timeout: float = 5.0) -> float | None:  # noqa: ANN001
    """Seconds until ``predicate()`` held, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.001)
    return None


def peer_tempo(peer) -> float:  # noqa: ANN001
    return peer.captureAppSessionState().tempo()


def main() -> None:
    out: dict = {}
    peer = link.Link(100.0)
    peer.startStopSyncEnabled = True
    peer.enabled = True
    cadenza = LinkSync(bpm=120.0)
    out["join_s"] = wait(lambda: cadenza.peers == 1 and peer.numPeers() == 1)
    time.sleep(0.2)
    out["tempo_after_join"] = [cadenza.bpm, peer_tempo(peer)]
    time.sleep(0.8)
    # 1 s after joining: Cadenza's beat against the other app's at the same moment, in ms
    now = time.perf_counter()
    theirs = peer.captureAppSessionState().beatAtTime(cadenza.link_time(now), 4.0)
    out["join_phase_error_ms"] = abs(cadenza.beat_at(now) - theirs) * 60.0 / cadenza.bpm * 1e3
    # a tempo change from the other app reaches Cadenza
    state = peer.captureAppSessionState()
    state.setTempo(133.0, peer.clock().micros())
    peer.commitAppSessionState(state)
    out["tempo_to_cadenza_s"] = wait(lambda: abs(cadenza.bpm - 133.0) < 0.01)
    # and one from Cadenza reaches the other app
    cadenza.set_tempo(97.5)
    out["tempo_to_peer_s"] = wait(lambda: abs(peer_tempo(peer) - 97.5) < 0.01)
    # start/stop both ways
    state = peer.captureAppSessionState()
    state.setIsPlaying(True, peer.clock().micros())
    peer.commitAppSessionState(state)
    out["start_to_cadenza_s"] = wait(lambda: cadenza.playing)
    cadenza.set_playing(False)
    out["stop_to_peer_s"] = wait(lambda: not peer.captureAppSessionState().isPlaying())
    # the transport follows the session's beat (started on the next bar)
    seq = NoteSequence(notes=[Note(60, 80, 0.5 * k, 0.5 * k + 0.1) for k in range(20)])
    transport = Transport([])
    at, bar = cadenza.next_bar_time()
    out["start_phase"] = cadenza.phase_at(at)
    transport.play(seq, tempo=cadenza.bpm / 120.0, at=at)
    cadenza.follow(transport, file_bpm=120.0, origin_beat=bar)
    out["bar_wait_s"] = at - time.perf_counter()
    time.sleep(max(0.0, at - time.perf_counter()) + 1.0)  # 1 s after the start
    # after 1 s: Cadenza's beat against the other app's, at the same moment, in ms
    errors = []
    for _ in range(50):
        now = time.perf_counter()
        mine = cadenza.beat_at(now)
        theirs = peer.captureAppSessionState().beatAtTime(cadenza.link_time(now), 4.0)
        errors.append(abs(mine - theirs) * 60.0 / cadenza.bpm * 1000.0)
        # the transport's position against the session's beat
        time.sleep(0.005)
    out["phase_error_ms"] = errors
    now = time.perf_counter()
    expected = (cadenza.beat_at(now) - bar) * 0.5  # seconds of the file (120 BPM)
    out["transport_error_ms"] = abs(transport.position - expected) * 1000.0
    # a second peer joins
    second = link.Link(140.0)
    second.enabled = True
    out["second_join_s"] = wait(lambda: cadenza.peers == 2)
    out["second_tempo"] = peer_tempo(second)
    transport.close()
    cadenza.close()
    out["left_s"] = wait(lambda: peer.numPeers() == 1)
    second.enabled = False
    peer.enabled = False
    print(json.dumps(out))


if __name__ == "__main__":
    main()
