"""Documents and per-dimension FAISS indexes, durable across crashes; knows nothing of HTTP.

``facade`` holds :class:`Store` (what the service uses); ``state`` its immutable published
views, ``segments`` how indexes are built and merged, ``persistence`` the data directory
(lock, manifest, snapshots, recovery), ``ids`` what a document id may be.
"""

from .facade import Store, reindex
from .ids import MAX_ID_CHARS, check_id, check_ids
from .segments import IndexConfig

__all__ = ["MAX_ID_CHARS", "IndexConfig", "Store", "check_id", "check_ids", "reindex"]
