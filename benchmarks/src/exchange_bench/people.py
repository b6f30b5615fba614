"""Synthetic patients for load: a different person for every (source, ``n``), deterministic, so
the normalizer's person step does the work it does on real traffic (a few candidates a record),
not the worst case of every record naming one person; two phases of a run (two sources) do not
name the same people."""

from __future__ import annotations

import datetime as dt
import hashlib

__all__ = ("patient_v1", "patient_v2")

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_EPOCH = dt.date(1935, 1, 1)


def _word(seed: bytes, syllables: int) -> str:
    return "".join(_ONSETS[seed[2 * i] % len(_ONSETS)] + _VOWELS[seed[2 * i + 1] % len(_VOWELS)]
                   for i in range(syllables)).capitalize()


def _person(n: int, source: str) -> tuple[str, str, str, str]:
    seed = hashlib.blake2b(n.to_bytes(8, "big") + source.encode(), digest_size=16).digest()
    dob = _EPOCH + dt.timedelta(days=int.from_bytes(seed[12:14], "big") % 25_000)
    ssn = f"{100 + seed[14] % 800:03d}-{10 + seed[15] % 89:02d}-{int.from_bytes(seed[10:12], 'big') % 9000 + 1000:04d}"
    return _word(seed, 2), _word(seed[4:], 3), dob.isoformat(), ssn


def patient_v1(n: int, source: str = "") -> dict[str, str]:
    given, family, dob, ssn = _person(n, source)
    return {"first_name": given, "last_name": family, "dob": dob, "ssn": ssn}


def patient_v2(n: int, source: str = "") -> dict[str, str]:
    given, family, dob, ssn = _person(n, source)
    return {"given_name": given, "family_name": family, "dob": dob, "ssn": ssn}
