"""Runtime stage: drop duplicate examples before they reach the dataset.

Two examples are duplicates when their dedupe keys (the fields the task names
under `generate.dedupe.key`, or all input fields) are equal after normalisation,
or — when the threshold is below 1 — similar by rapidfuzz's normalised Indel
ratio at or above `near_duplicate_threshold`. The first example seen wins, so
feeding examples in plan order makes the outcome independent of the order in
which calls completed. Up to a thousand kept examples every one is compared
(exact); beyond that, candidates come from a MinHash LSH index over character
shingles (buckets capped, so frequent shared fragments do not make every example
a candidate) so that 100,000 examples dedupe in near-linear time, and rapidfuzz
makes the final decision on each candidate.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from ..compiler import DedupePolicy

EXHAUSTIVE_LIMIT = 1000  # up to this many kept examples, compare with all of them
# A band shared by hundreds of examples is common structure (a frequent ingredient), not a near-duplicate;
# true near-duplicates share several bands, so capping a bucket bounds the work at little cost in recall.
MAX_BUCKET = 64
_SHINGLE = 4
_BANDS, _ROWS = 16, 5  # a band matches when 5 minhashes agree: Jaccard 0.8 -> 99%, 0.4 -> 2%
_PRIME = (1 << 61) - 1
_HASH_RNG = np.random.default_rng(20240501)  # fixed: the index must be the same in every process
_A = _HASH_RNG.integers(1, 1 << 31, size=_BANDS * _ROWS, dtype=np.uint64)
_B = _HASH_RNG.integers(0, 1 << 31, size=_BANDS * _ROWS, dtype=np.uint64)
_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class DuplicateOf:
    kind: str  # "exact" or "near"
    original: int  # index (in order of `add`) of the kept example it duplicates
    similarity: float


def normalise_text(text: str, normalize: bool) -> str:
    if not normalize:
        return text
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def dedupe_key(example: Mapping[str, Any], fields: Sequence[str], normalize: bool) -> str:
    """One string per example from its key fields; list items are sorted since order carries no meaning."""
    parts = []
    for name in fields:
        value = example.get(name)
        if isinstance(value, list):
            items = [normalise_text(str(v), normalize) for v in value]
            parts.append(", ".join(sorted(items) if normalize else items))
        else:
            parts.append(normalise_text("" if value is None else str(value), normalize))
    return " | ".join(parts)


class Deduplicator:
    """Remembers kept examples and tells whether a new one duplicates any of them."""

    def __init__(self, policy: DedupePolicy, field_names: Sequence[str]) -> None:
        self.policy = policy
        self.fields = tuple(policy.key) or tuple(field_names)
        self.threshold = policy.near_duplicate_threshold * 100.0
        self._exact: dict[bytes, int] = {}
        self._kept: list[str] = []
        self._kept_index: list[int] = []  # position in `add` order of each kept example
        self._buckets: dict[int, int | list[int]] = {}  # LSH band hash -> kept positions
        self._indexed = False  # the LSH index is built once more than EXHAUSTIVE_LIMIT examples are kept
        self._seen = 0

    def add(self, example: Mapping[str, Any]) -> DuplicateOf | None:
        """Record ``example``; return what it duplicates, or None when it is new (and now kept)."""
        index = self._seen
        self._seen += 1
        key = dedupe_key(example, self.fields, self.policy.normalize)
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
        if digest in self._exact:
            return DuplicateOf("exact", self._exact[digest], 1.0)
        bands: list[int] = []
        if self.threshold < 100.0:
            if not self._indexed and len(self._kept) > EXHAUSTIVE_LIMIT:
                # Up to here every kept example was compared exhaustively, which needs no index: the bands
                # are worked out only once the index is needed, so a small dataset never pays for them.
                for position, kept in enumerate(self._kept):
                    self._index(_band_hashes(kept), position)
                self._indexed = True
            bands = _band_hashes(key) if self._indexed else []
            near = self._nearest(key, bands)
            if near is not None:
                return near
        self._exact[digest] = index
        position = len(self._kept)
        self._kept.append(key)
        self._kept_index.append(index)
        self._index(bands, position)
        return None

    def _index(self, bands: list[int], position: int) -> None:
        for band in bands:
            bucket = self._buckets.get(band)
            if bucket is None:
                self._buckets[band] = position
            elif isinstance(bucket, int):
                self._buckets[band] = [bucket, position]
            elif len(bucket) < MAX_BUCKET:
                bucket.append(position)

    def _nearest(self, key: str, bands: list[int]) -> DuplicateOf | None:
        if not self._kept:
            return None
        if not self._indexed:
            choices: Sequence[str] = self._kept
            positions: Sequence[int] = range(len(self._kept))
        else:
            found: dict[int, None] = {}
            for band in bands:
                bucket = self._buckets.get(band)
                if bucket is None:
                    continue
                if isinstance(bucket, int):
                    found[bucket] = None
                else:
                    found.update(dict.fromkeys(bucket))
            if not found:
                return None
            positions = sorted(found)
            choices = [self._kept[p] for p in positions]
        match = process.extractOne(key, choices, scorer=fuzz.ratio, score_cutoff=self.threshold)
        if match is None:
            return None
        _text, score, offset = match
        return DuplicateOf("near", self._kept_index[positions[offset]], round(score / 100.0, 4))


def _band_hashes(key: str) -> list[int]:
    """MinHash signature of the key's 4-byte shingles, folded into one hash per LSH band."""
    raw = np.frombuffer(f" {key} ".encode().ljust(_SHINGLE, b" "), dtype=np.uint8).astype(np.uint64)
    # Each shingle is its 4 bytes read as one 32-bit number: no Python loop, no hashing of strings.
    count = len(raw) - _SHINGLE + 1
    values = raw[:count] | raw[1:count + 1] << 8 | raw[2:count + 2] << 16 | raw[3:count + 3] << 24
    values = np.unique(values)
    # (a*x + b) mod p over uint64 stays exact: a < 2**31 and x < 2**32, so a*x + b < 2**64.
    signature = ((np.outer(_A, values) + _B[:, None]) % _PRIME).min(axis=1)
    rows = signature.reshape(_BANDS, _ROWS)
    return [hash((band, *row.tolist())) for band, row in enumerate(rows)]
