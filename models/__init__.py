"""Cadenza's core: music data types, file I/O, rendering and the model families.

Importable without Qt; it never imports ``app``.
"""

from models.errors import CadenzaError

__all__ = ["CadenzaError"]
