"""smec-compress: learned compression of frozen retrieval embeddings (SMEC).

    from smec_compress import SMEC, read_embeddings
    corpus = read_embeddings("corpus.parquet")
    head = SMEC(dims=(128, 64, 32)).fit(corpus.vectors)
    z = head.transform(corpus.vectors, dim=64)
"""

__version__ = "0.1.0"

from .baselines import PCA, MatryoshkaAdaptor, RandomProjection, Truncation
from .beir import read_qrels
from .embed import Embedder
from .errors import SmecError
from .evaluate import evaluate_retrieval
from .head import SMEC
from .config import FitConfig
from .io import Columns, EmbeddingMeta, Embeddings, EmbeddingWriter, read_embeddings, write_embeddings

__all__ = [
    "PCA",
    "SMEC",
    "FitConfig",
    "MatryoshkaAdaptor",
    "Columns",
    "Embedder",
    "EmbeddingMeta",
    "EmbeddingWriter",
    "Embeddings",
    "RandomProjection",
    "SmecError",
    "Truncation",
    "evaluate_retrieval",
    "read_embeddings",
    "read_qrels",
    "write_embeddings",
    "__version__",
]
