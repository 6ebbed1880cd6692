"""Runtime hook: pyfluidsynth and sounddevice find their C libraries with
``ctypes.util.find_library``, which only looks at the system's. The packaged build carries
libfluidsynth and libportaudio beside its modules: those are the ones to load."""

import ctypes.util
import glob
import os
import sys

_BUNDLED = {"fluidsynth": "libfluidsynth.*", "portaudio": "libportaudio.*"}
_system_find_library = ctypes.util.find_library


def _find_library(name: str) -> str | None:
    key = name.lower().removeprefix("lib").split("-")[0]
    pattern = _BUNDLED.get(key)
    if pattern:
        found = sorted(glob.glob(os.path.join(sys._MEIPASS, pattern)))
        if found:
            return found[0]
    return _system_find_library(name)


ctypes.util.find_library = _find_library
