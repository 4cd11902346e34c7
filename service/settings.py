"""Service configuration: every field is also an environment variable ``SMEC_<NAME>``.

Built once per app in ``create_app(settings)`` (tests pass their own); never read at import time.
Lists and maps come from JSON in the environment, e.g. ``SMEC_DIMS='[64, 32]'`` and
``SMEC_INDEX_FACTORIES='{"64": "HNSW32"}'``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMEC_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface `smec-compress serve` binds; beyond loopback, writes need "
                      "an API key (protected mode).")
    port: int = Field(8000, ge=1, le=65535, description="Port `smec-compress serve` binds.")
    head_dir: Path | None = Field(None, description="Directory of a head saved by `smec-compress fit`.")
    data_dir: Path = Field(Path("data"), description="Where documents, the write-ahead log and index snapshots live.")
    dims: list[int] | None = Field(None, description="Dims to index and serve (default: every dim of the head).")
    budgets: list[int] | None = Field(None, description="Byte budgets to index and serve with the head's codecs "
                                      "(default: every budget of a head fitted with --budgets, sign bits aside).")
    default_dim: int | None = Field(None, description="Dim used when a request gives none (default: the largest served).")
    index_factory: str = Field("Flat", description="FAISS factory string for every dim (exact inner product by default).")
    index_factories: dict[int, str] = Field(default_factory=dict, description="Per-dim factory overrides, e.g. HNSW32.")
    index_params: str = Field("", description="FAISS ParameterSpace string applied to built indexes, e.g. nprobe=16.")
    index_min_rows: int = Field(50_000, ge=1, description="Segments smaller than this are exact Flat indexes.")
    snapshot_every: int = Field(1000, ge=1, description="Log records between index snapshots (bounds replay at start).")
    fsync: bool = Field(True, description="fsync the log before acknowledging a write (turn off only for throwaway data).")
    reindex: bool = Field(False, description="Rebuild the indexes at start when the head or index settings changed.")
    embedder: str | None = Field(None, description="'default' for the bundled all-MiniLM-L6-v2, a model folder, or unset (no texts).")
    query_prompt: str | None = Field(None, description="Text the embedder puts before search texts (as `embed --query-prompt`).")
    document_prompt: str | None = Field(None, description="Text the embedder puts before document and /compress texts.")
    embedder_force: bool = Field(False, description="Serve the head even if it was fitted on another embedder.")
    api_key: SecretStr | None = Field(None, description="Bearer token required for writes (and reads with auth_reads).")
    auth_reads: bool = Field(False, description="Also require the API key for compress, search and reads.")
    allow_anonymous_writes: bool = Field(
        False, description="Protected mode off: accept writes without an API key on a server bound beyond loopback "
        "(by default such a server refuses them with 403, as Redis' protected mode does).")
    max_body_bytes: int = Field(64 * 2**20, ge=1024, description="Larger request bodies get 413.")
    max_batch: int = Field(4096, ge=1, description="Most vectors or texts in one request.")
    max_k: int = Field(1000, ge=1, description="Largest k a search may ask for.")
    rescore: int = Field(0, ge=0, description="Default oversampling of /search: rescore this many candidates (at least "
                         "k) with the stored full vectors; 0: off. A request's ?rescore= overrides it.")
    max_rescore: int = Field(1000, ge=1, description="Largest ?rescore= a search may ask for.")
    inline_search_scores: int = Field(200_000, ge=0, description=(
        "A /search whose query rows x documents is at most this runs on the event loop (1 query over 100k 64-d "
        "documents takes about 0.6 ms, and a thread-pool hop adds a large part of that); larger ones run in the thread pool so the "
        "loop keeps serving other requests. 0: every search in the pool."))
    max_text_chars: int = Field(20_000, ge=1, description="Longest text accepted.")
    faiss_threads: int | None = Field(
        1, ge=1, description="OpenMP threads per FAISS search. 1 by default: requests already run in parallel, and "
        "on shared cores OpenMP spin-waiting made single-query search ~10x slower in bench/service.py. Unset: FAISS default.")
    background_load: bool = Field(True, description="Load head and indexes after the server starts (/readyz says when).")
    log_level: str = Field("info", description="uvicorn and service log level.")
