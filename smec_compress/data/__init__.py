"""Vectors on disk and where they come from: embedding files (``schema``, ``files``, ``io``,
``writer``, with ``atomic`` outputs, ``direct_io`` and ``read_ahead`` for streaming), sampling,
training pairs, the embedding model (``embed``) and BEIR datasets."""
