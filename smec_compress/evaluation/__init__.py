"""Measuring compressors side by side: the dataset to score (``evalset``, ``cache``), retrieval
and trec_eval metrics (``retrieval``), the rivals (``baselines``), the rows (``compare``), one run
(``run``) and its tables and plot (``report``, ``plot``). Nothing in ``model`` or ``codecs`` imports it."""
