"""Reading retrieval datasets in the BEIR layout (corpus, queries, qrels).

A BEIR directory holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (header, then ``query-id  corpus-id  score``).
The ``.jsonl`` files may be gzipped (``corpus.jsonl.gz``), which is how the repo's sample ships.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import SmecError

Qrels = dict[str, dict[str, int]]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def find_file(directory: Path, name: str) -> Path:
    """``name.jsonl`` or ``name.jsonl.gz`` inside a BEIR directory."""
    for candidate in (directory / f"{name}.jsonl", directory / f"{name}.jsonl.gz"):
        if candidate.is_file():
            return candidate
    raise SmecError(f"{directory}: no {name}.jsonl or {name}.jsonl.gz (not a BEIR dataset directory)")


def is_beir_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in ("corpus.jsonl", "corpus.jsonl.gz"))


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Records of a JSON-lines file; a broken line is an error naming the file and line."""
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SmecError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise SmecError(f"{path}:{lineno}: expected a JSON object per line")
            yield record


def read_texts(path: Path, *, title: bool) -> tuple[list[str], list[str]]:
    """Ids and texts of a JSON-lines file with ``_id`` (or ``id``) and ``text``.

    With ``title=True`` a document is embedded as "title text", as BEIR and MTEB do; the
    reference scores (0.6451 nDCG@10 on SciFact for all-MiniLM-L6-v2) depend on it.
    """
    ids: list[str] = []
    texts: list[str] = []
    for lineno, record in enumerate(iter_jsonl(path), 1):
        rid = record.get("_id", record.get("id"))
        if rid is None or "text" not in record:
            raise SmecError(f"{path}: record {lineno} lacks '_id'/'id' or 'text' (keys: {sorted(record)})")
        text = record["text"] or ""
        if title and record.get("title"):
            text = f"{record['title']} {text}".strip()
        ids.append(str(rid))
        texts.append(text)
    if not ids:
        raise SmecError(f"{path}: no records")
    if len(set(ids)) != len(ids):
        raise SmecError(f"{path}: {len(ids) - len(set(ids))} duplicate ids")
    return ids, texts


def read_qrels(path: str | Path) -> Qrels:
    """``{query_id: {doc_id: relevance}}`` from a BEIR qrels TSV (header line optional)."""
    path = Path(path)
    if not path.is_file():
        raise SmecError(f"{path}: qrels file not found")
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (lineno == 1 and row[0] in ("query-id", "query_id", "qid")):
                continue
            if len(row) < 3:
                raise SmecError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score', got {row!r}")
            try:
                score = int(float(row[2]))
            except ValueError:
                raise SmecError(f"{path}:{lineno}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    if not qrels:
        raise SmecError(f"{path}: no judgements")
    return qrels
