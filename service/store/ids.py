"""Document ids: what a client may use as one."""

from __future__ import annotations

from smec_compress.errors import SmecError

MAX_ID_CHARS = 256


def check_ids(ids: list[str], rows: int) -> None:
    if len(ids) != rows:
        raise SmecError(f"got {len(ids)} ids for {rows} vectors; send one id per vector")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(e for e in ids if e in seen or seen.add(e))
        raise SmecError(f"duplicate id {dup!r} in one request; each id may appear once per write")
    for e in ids:
        check_id(e)


def check_id(doc_id: str) -> None:
    if not isinstance(doc_id, str) or not 1 <= len(doc_id) <= MAX_ID_CHARS:
        raise SmecError(f"id {doc_id!r:.60} must be a string of 1..{MAX_ID_CHARS} characters")
    if "/" in doc_id or any(ord(c) < 32 or ord(c) == 127 for c in doc_id):
        raise SmecError(f"id {doc_id!r:.60} may not contain '/' or control characters")
