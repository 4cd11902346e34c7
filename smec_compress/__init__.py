"""smec-compress: learned compression of frozen retrieval embeddings (SMEC).

    from smec_compress import SMEC, read_embeddings
    corpus = read_embeddings("corpus.parquet")
    head = SMEC(dims=(128, 64, 32)).fit(corpus.vectors)
    z = head.transform(corpus.vectors, dim=64)
"""

__version__ = "0.1.0"

from .config import FitConfig
from .data.beir import read_qrels
from .data.embed import Embedder
from .data.io import Embeddings, read_embeddings
from .data.schema import Columns, EmbeddingMeta
from .data.writer import EmbeddingWriter, write_embeddings
from .errors import SmecError
from .evaluation.baselines import MatryoshkaAdaptor, RandomProjection, Truncation
from .evaluation.retrieval import evaluate_retrieval
from .model.head import SMEC
from .model.pca import PCA

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
