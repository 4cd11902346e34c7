"""The ``smec-compress`` command line: ``app`` with every command registered, and ``main``."""

from . import compress, data, evaluate, export, fit, service  # noqa: F401  (each registers its commands on app)
from .app import app, main, user_message

__all__ = ["app", "main", "user_message"]
