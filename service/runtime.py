"""What a running service holds: head, optional embedder and store, loaded once by the lifespan.

Loading can run in a background thread so ``/healthz`` answers at once while a large store
replays its log; until it is done (or if it failed) ``/readyz`` is 503 and says why.
"""

from __future__ import annotations

import logging
import threading

from smec_compress.errors import SmecError

from .settings import Settings
from .store import Store

log = logging.getLogger("smec.service")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.head = None
        self.embedder = None
        self.store: Store | None = None
        self.default_dim: int | None = None
        self.error: str | None = None
        self.status = "not started"
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.store is not None

    def start(self) -> None:
        """Load in the calling thread, or in a background thread when settings say so."""
        if self.settings.background_load:
            self._thread = threading.Thread(target=self._load_logged, name="smec-load", daemon=True)
            self._thread.start()
        else:
            self.load()

    def _load_logged(self) -> None:
        try:
            self.load()
        except Exception:  # noqa: BLE001 - reported by /readyz and the log; the process stays alive
            log.exception("loading failed")

    def load(self) -> None:
        from smec_compress.model.head import SMEC

        s = self.settings
        try:
            if s.head_dir is None:
                raise SmecError("no head configured: pass --head DIR or set SMEC_HEAD_DIR")
            self.status = f"loading head {s.head_dir}"
            head = SMEC.load(s.head_dir)
            dims = tuple(s.dims) if s.dims else tuple(head.dims_)
            default_dim = s.default_dim if s.default_dim is not None else max(dims)
            if default_dim not in dims:
                raise SmecError(f"SMEC_DEFAULT_DIM={default_dim} is not a served dim; served dims: {sorted(dims, reverse=True)}")
            if s.embedder:
                from smec_compress.data.embed import Embedder, Prompts

                self.status = f"loading embedder {s.embedder}"
                embedder = Embedder(None if s.embedder == "default" else s.embedder,
                                    prompts=Prompts(s.query_prompt, s.document_prompt))
                head.check_input(embedder.dim, embedder.fingerprint, s.embedder_force)
                self.embedder = embedder
            self.status = f"opening store {s.data_dir}"
            self.store = Store.from_settings(s, head)
            self.head, self.default_dim = head, default_dim
            self.status = "ready"
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SmecError) else str(exc)
            self.status = "failed"
            raise

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=600)
        if self.store is not None:
            self.store.close()
            self.store = None
