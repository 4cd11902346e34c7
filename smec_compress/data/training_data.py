"""Supervised training pairs: query vectors joined to their relevant documents by id."""

from __future__ import annotations

import numpy as np

from ..errors import SmecError
from .beir import read_qrels
from .io import Embeddings


def training_pairs(corpus: Embeddings, queries: Embeddings, qrels_path, *, kind: str = "training") -> tuple[np.ndarray, np.ndarray, str]:
    """``(query_vectors, positive_doc_rows, report)``: one row per judged relevant pair
    (``kind`` names what the pairs are for in the report: training or validation).

    Judgements with score <= 0 are not positives. Pairs naming ids missing from the embeddings are
    dropped and counted in the report; none left at all is an error.
    """
    qrels = read_qrels(qrels_path)
    doc_row = {d: i for i, d in enumerate(corpus.ids)}
    query_row = {q: i for i, q in enumerate(queries.ids)}
    q_rows: list[int] = []
    d_rows: list[int] = []
    unknown_q = unknown_d = 0
    for qid, docs in qrels.items():
        for did, score in docs.items():
            if score <= 0:
                continue
            if qid not in query_row:
                unknown_q += 1
            elif did not in doc_row:
                unknown_d += 1
            else:
                q_rows.append(query_row[qid])
                d_rows.append(doc_row[did])
    if not q_rows:
        raise SmecError(
            f"{qrels_path}: no usable pairs ({unknown_q} name unknown queries, {unknown_d} unknown documents); "
            "are --queries and the corpus the ones these qrels refer to?"
        )
    report = f"{len(q_rows)} {kind} pairs from {qrels_path}"
    if unknown_q or unknown_d:
        report += f" (skipped {unknown_q} pairs with unknown query ids, {unknown_d} with unknown doc ids)"
    return queries.vectors[q_rows], np.asarray(d_rows, dtype=np.int64), report
