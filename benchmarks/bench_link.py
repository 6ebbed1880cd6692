"""Ableton Link: Cadenza against another Link peer in a separate process, on loopback only.

    .venv/bin/python benchmarks/bench_link.py [--rounds 5]

It re-runs itself inside a private network namespace (``unshare -n``, loopback up with
multicast: root, or a user namespace where allowed) and refuses to run Link anywhere else, so
nothing is sent on the local network. Each round: Cadenza's :class:`app.link.LinkSync` and a
peer process (``link.Link``) join; 1 s after the peer joined, both take the session's beat at
the same Link clock instants (Link's clock is the system's monotonic clock, shared by the two
processes): the beat phase error, in ms; then a tempo change from each side, timed until the
other side sees it. Prints JSON: join time, phase error p50/max, tempo propagation both ways.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MARK = "CADENZA_LINK_BENCH_NS"

PEER = r"""
import json, sys, time
import link
peer = link.Link(100.0)
peer.enabled = True
clock = peer.clock()
t0 = time.monotonic()
while peer.numPeers() < 1 and time.monotonic() - t0 < 10:
    time.sleep(0.001)
joined = clock.micros()
while clock.micros() - joined < 1_000_000:
    time.sleep(0.001)
samples = []
for _ in range(20):
    m = clock.micros()
    samples.append((m, peer.captureAppSessionState().beatAtTime(m, 4.0)))
    time.sleep(0.01)
print(json.dumps({"joined": joined, "samples": samples}), flush=True)
# wait for Cadenza's tempo change, then make one
t0 = time.monotonic()
while abs(peer.captureAppSessionState().tempo() - 131.0) > 0.01 and time.monotonic() - t0 < 5:
    time.sleep(0.0002)
seen = clock.micros()
time.sleep(0.2)
state = peer.captureAppSessionState()
sent = clock.micros()
state.setTempo(87.0, sent)
peer.commitAppSessionState(state)
print(json.dumps({"saw_131": seen, "sent_87": sent}), flush=True)
time.sleep(1.0)
peer.enabled = False
"""


def private_network() -> bool:
    """Whether this process sees no network interface but loopback."""
    names = [line.split(":")[1].strip() for line in subprocess.run(
        ["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines() if ":" in line]
    return names == ["lo"]


def one_round() -> dict:
    import numpy as np

    from app.link import LinkSync

    cadenza = LinkSync(bpm=120.0)
    start = cadenza.clock_micros()
    peer = subprocess.Popen([sys.executable, "-c", PEER], stdout=subprocess.PIPE, text=True)
    first = json.loads(peer.stdout.readline())
    errors = []
    bpm = cadenza.bpm
    for micros, beat in first["samples"]:
        mine = cadenza.beat_at(cadenza.perf_time(micros))
        errors.append(abs(mine - beat) * 60.0 / bpm * 1000.0)
    time.sleep(0.1)
    sent = cadenza.clock_micros()
    cadenza.set_tempo(131.0)
    t0 = time.monotonic()
    while abs(cadenza.bpm - 87.0) > 0.01 and time.monotonic() - t0 < 5:
        time.sleep(0.0002)
    saw_87 = cadenza.clock_micros()
    second = json.loads(peer.stdout.readline())
    peer.wait(10)
    cadenza.close()
    return {"join_ms": (first["joined"] - start) / 1000.0,
            "phase_error_ms": float(np.max(errors)),
            "tempo_to_peer_ms": (second["saw_131"] - sent) / 1000.0,
            "tempo_to_cadenza_ms": (saw_87 - second["sent_87"]) / 1000.0}


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if os.environ.get(MARK) != "1":
        env = dict(os.environ, **{MARK: "1"})
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up multicast on && exec "$@"', "sh",
               sys.executable, str(Path(__file__).resolve()), "--rounds", str(args.rounds)]
        sys.exit(subprocess.run(cmd, env=env).returncode)
    if not private_network():
        raise SystemExit("refusing to run Link outside a private network namespace")
    import numpy as np

    rounds = [one_round() for _ in range(args.rounds)]

    def summary(key: str) -> dict:
        v = np.array([r[key] for r in rounds])
        return {"p50": round(float(np.percentile(v, 50)), 3), "max": round(float(v.max()), 3)}

    print(json.dumps({"rounds": len(rounds), "join_ms": summary("join_ms"),
                      "phase_error_ms_1s_after_join": summary("phase_error_ms"),
                      "tempo_to_peer_ms": summary("tempo_to_peer_ms"),
                      "tempo_to_cadenza_ms": summary("tempo_to_cadenza_ms")}, indent=2))


if __name__ == "__main__":
    main()
