"""Engines that run ``compress``/``embed`` over a whole dataset: ``local`` (streaming, in this
process) and ``ray`` (a Ray Data pipeline)."""
