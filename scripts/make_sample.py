"""Make the small SciFact sample shipped in ``sample/scifact`` (demo and tests), reproducibly.

    .venv/bin/python scripts/make_sample.py [--source ../shared/data/scifact] [--docs 1000]

Keeps every test query with its relevant documents, 200 train queries with theirs (for the
supervised demo), and fills up with randomly drawn other documents (seed 0). Files are gzipped
with a fixed timestamp, so re-running gives byte-identical output. It then embeds the sample with
the bundled model into ``sample/scifact/embeddings/`` so tests need not run the model.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_qrels(path: Path) -> list[tuple[str, str, str]]:
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")]
    return [tuple(r) for r in rows[1:] if len(r) == 3]


def write_gz_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        for record in records:
            fh.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def write_qrels(path: Path, rows: list[tuple[str, str, str]]) -> None:
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--out", type=Path, default=ROOT / "sample" / "scifact")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--train-queries", type=int, default=200)
    parser.add_argument("--no-embed", action="store_true", help="skip embedding the sample")
    args = parser.parse_args()

    rng = random.Random(0)
    corpus = read_jsonl(args.source / "corpus.jsonl")
    queries = {q["_id"]: q for q in read_jsonl(args.source / "queries.jsonl")}
    test = read_qrels(args.source / "qrels" / "test.tsv")
    train = read_qrels(args.source / "qrels" / "train.tsv")
    train_qids = sorted({q for q, _, _ in train}, key=int)
    chosen_train = set(rng.sample(train_qids, args.train_queries))
    train = [r for r in train if r[0] in chosen_train]

    keep = {d for _, d, _ in test} | {d for _, d, _ in train}
    others = sorted(d["_id"] for d in corpus if d["_id"] not in keep)
    keep |= set(rng.sample(others, max(0, args.docs - len(keep))))
    kept_corpus = [d for d in corpus if d["_id"] in keep]
    qids = {q for q, _, _ in test} | chosen_train
    kept_queries = [queries[q] for q in sorted(qids, key=int)]

    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    write_gz_jsonl(args.out / "corpus.jsonl.gz", kept_corpus)
    write_gz_jsonl(args.out / "queries.jsonl.gz", kept_queries)
    write_qrels(args.out / "qrels" / "test.tsv", test)
    write_qrels(args.out / "qrels" / "train.tsv", train)
    print(f"sample: {len(kept_corpus)} docs, {len(kept_queries)} queries, {len(test)} test and {len(train)} train judgements")
    if not args.no_embed:
        emb = args.out / "embeddings" / "scifact-sample.parquet"
        cli = [sys.executable, "-m", "smec_compress", "embed", str(args.out), "--out", str(emb)]
        subprocess.run(cli, check=True)


if __name__ == "__main__":
    main()
