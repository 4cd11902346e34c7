"""What leaves the package for other tools: FAISS index files (``index``) and a
sentence-transformers model that emits a head's vectors (``sentence_transformers``)."""
