"""Request and response models (kept apart: what clients send is not what they get back).

Request models are flat (no nested models) so their JSON schema can be inlined in the OpenAPI
request body next to the ``application/x-npy`` alternative.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from smec_compress.export.index import IndexStats

Vectors = list[list[float]]


def _exactly_one(model: BaseModel, names: tuple[str, ...]) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise ValueError(f"give exactly one of {', '.join(names)} (got {what})")


class CompressRequest(BaseModel):
    """Full-dimension vectors (or texts, when the server has an embedder) to compress."""

    model_config = ConfigDict(extra="forbid")
    vectors: Vectors | None = Field(None, min_length=1, description="Rows of the head's input dim.")
    texts: list[str] | None = Field(None, min_length=1, description="Texts to embed first (needs SMEC_EMBEDDER).")

    @model_validator(mode="after")
    def _one_input(self) -> "CompressRequest":
        _exactly_one(self, ("vectors", "texts"))
        return self


class SearchRequest(BaseModel):
    """One or more queries, as full-dimension vectors or texts; they go through the same head."""

    model_config = ConfigDict(extra="forbid")
    vector: list[float] | None = Field(None, min_length=1)
    vectors: Vectors | None = Field(None, min_length=1)
    text: str | None = None
    texts: list[str] | None = Field(None, min_length=1)
    k: int = Field(10, ge=1, description="Results per query (at most SMEC_MAX_K).")

    @model_validator(mode="after")
    def _one_input(self) -> "SearchRequest":
        _exactly_one(self, ("vector", "vectors", "text", "texts"))
        return self


class DocumentsRequest(BaseModel):
    """Documents to insert or replace: one id per full-dimension vector (or text)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1, description="1..256 characters each, no '/' or control characters.")
    vectors: Vectors | None = Field(None, min_length=1)
    texts: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_input(self) -> "DocumentsRequest":
        _exactly_one(self, ("vectors", "texts"))
        return self


class CompressResponse(BaseModel):
    dim: int
    vectors: Vectors


class Hit(BaseModel):
    id: str
    score: float = Field(description="Inner product of the compressed vectors (cosine: a head's outputs are unit "
                                   "unless it keeps norms); with rescore, of the full-dim vectors.")


class SearchResponse(BaseModel):
    dim: int | None = Field(description="The dim searched (null with ?budget=).")
    budget: int | None = Field(None, description="The byte budget searched (?budget=), else null.")
    k: int
    rescore: int = Field(0, description="Candidates rescored with the full vectors (0: scores are the dim's own).")
    results: list[list[Hit]] = Field(description="Per query, best first; fewer than k when the store holds fewer.")


class UpsertResponse(BaseModel):
    created: int
    updated: int
    documents: int = Field(description="Documents in the store after this write.")


class DocumentResponse(BaseModel):
    id: str
    vector: list[float] = Field(description="The stored full-dimension vector.")


class DeleteResponse(BaseModel):
    id: str
    deleted: bool


class IndexesResponse(BaseModel):
    documents: int
    input_dim: int
    head_fingerprint: str
    default_dim: int
    served_dims: list[int]
    indexes: list[IndexStats] = Field(description="Per served dim; index_type is the FAISS factory string (segments "
                                      "under SMEC_INDEX_MIN_ROWS rows are Flat), memory_bytes an estimate.")
    served_budgets: list[int] = Field(default_factory=list, description="Byte budgets /search?budget= serves.")
    budgets: list[IndexStats] = Field(default_factory=list, description="Per served byte budget: the head's codec "
                                      "(index_type), the dim it codes, its bytes per vector and memory.")
    storage: Storage


class Storage(BaseModel):
    ram_bytes: int = Field(description="Every served dim's and budget's index (estimated): what the process holds in RAM.")
    full_vectors_disk_bytes: int = Field(description="The stored full vectors (memory-mapped files read back only for "
                                         "rescoring and GET /documents: page cache, not the process's memory).")
    disk_bytes: int = Field(description="The whole data directory: full vectors, index snapshots and the write-ahead log.")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    status: str
    detail: str | None = None


class ErrorResponse(BaseModel):
    detail: str
