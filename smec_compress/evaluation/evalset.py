"""What ``eval`` scores: corpus and query vectors plus the qrels that judge them.

Either a BEIR directory (texts embedded through the cache, so a second run embeds nothing) or a
pre-embedded corpus Parquet whose queries sit beside it as ``NAME.queries.parquet`` (the layout
``embed`` writes), with a qrels file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.beir import Qrels, is_beir_dir, read_qrels
from ..data.embed import Embedder, Progress, Prompts, output_paths, text_sources
from ..data.files import SUFFIXES
from ..data.io import Embeddings, read_embeddings
from ..errors import SmecError
from .cache import cached_embeddings


@dataclass
class EvalSet:
    corpus: Embeddings
    queries: Embeddings
    qrels: Qrels
    model: str | None
    embedded_now: int  # sources the model had to embed (0 on a cache hit)
    train_qrels: Qrels | None = None  # labels a supervised head may have seen
    train_qrels_path: Path | None = None


def heldout_queries(test: Qrels, train: Qrels) -> list[str]:
    """Test queries none of whose relevant documents is a positive in the training qrels.

    A supervised head has seen those documents paired with training queries; on SciFact 196 of
    the 300 test queries share a relevant document with training pairs, which inflates the
    overall score, so supervised methods are also compared on the other 104.
    """
    seen = {d for rel in train.values() for d, score in rel.items() if score > 0}
    return [q for q, rel in test.items() if not any(d in seen for d, score in rel.items() if score > 0)]


def check_qrels(qrels: Qrels, corpus: Embeddings, queries: Embeddings) -> list[str]:
    """Warnings for judgements that name ids absent from the vectors (they cannot be retrieved)."""
    docs, qs = set(corpus.ids), set(queries.ids)
    unknown_q = sum(q not in qs for q in qrels)
    unknown_d = sum(d not in docs for rel in qrels.values() for d in rel)
    warnings = []
    if unknown_q:
        warnings.append(f"{unknown_q} of {len(qrels)} judged queries are not among the queries (skipped)")
    if unknown_d:
        warnings.append(f"{unknown_d} judgements name documents not in the corpus (they count as misses)")
    if unknown_q == len(qrels):
        raise SmecError("no judged query is among the queries: do the qrels belong to this dataset?")
    return warnings


def load_evalset(
    dataset: Path,
    *,
    qrels_path: Path | None,
    split: str,
    model: Path | None,
    cache_dir: Path,
    train_qrels_path: Path | None = None,
    progress: dict[str, Progress] | None = None,
    prompts: Prompts = Prompts(),
) -> EvalSet:
    """Vectors and judgements; the training qrels default to ``qrels/train.tsv`` of a BEIR
    directory when it exists and is not the split being scored. A BEIR directory's texts are
    embedded with ``prompts``; pre-embedded files already carry theirs (in their metadata)."""
    check_source(dataset, qrels_path=qrels_path, prompts=prompts)
    if is_beir_dir(dataset):
        qrels = read_qrels(qrels_path or dataset / "qrels" / f"{split}.tsv")
        default_train = dataset / "qrels" / "train.tsv"
        if train_qrels_path is None and split != "train" and qrels_path is None and default_train.is_file():
            train_qrels_path = default_train
        embedder = Embedder(model, prompts=prompts)
        loaded, misses = {}, 0
        for role, source in text_sources(dataset).items():
            loaded[role], hit = cached_embeddings(embedder, source, cache_dir, progress=(progress or {}).get(role))
            misses += not hit
        train = read_qrels(train_qrels_path) if train_qrels_path else None
        return EvalSet(loaded["corpus"], loaded["queries"], qrels, embedder.name, misses, train, train_qrels_path)
    corpus = read_embeddings(dataset)
    train = read_qrels(train_qrels_path) if train_qrels_path else None
    queries = read_embeddings(output_paths(dataset, ["queries"])["queries"])
    return EvalSet(corpus, queries, read_qrels(qrels_path), corpus.meta.model, 0, train, train_qrels_path)


def check_source(dataset: Path, *, qrels_path: Path | None, prompts: Prompts = Prompts()) -> None:
    """What can be checked before any reading or embedding starts: a BEIR directory, or a corpus
    file from ``embed`` with its queries beside it and a ``qrels_path`` (and no ``prompts``: its
    vectors were embedded with theirs)."""
    if is_beir_dir(dataset):
        return
    if prompts != Prompts():
        raise SmecError(f"{dataset}: prompts apply when eval embeds a BEIR directory; these vectors are embedded already")
    if dataset.suffix.lower() not in SUFFIXES:
        raise SmecError(f"{dataset}: expected a BEIR directory or a corpus .parquet/.arrow written by `embed`")
    if qrels_path is None:
        raise SmecError(f"{dataset}: pre-embedded input needs --qrels (a BEIR qrels TSV)")
    queries_path = output_paths(dataset, ["queries"])["queries"]
    if not queries_path.exists():
        raise SmecError(f"{dataset}: expected the query vectors beside it in {queries_path}")
