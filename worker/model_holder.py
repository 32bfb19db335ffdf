"""The model a predict worker process serves: loaded once, kept current, never lost to a bad version.

A pub/sub notice of activation makes the holder load the new active version at once; a check
every few seconds covers notices missed while disconnected. Loading runs on the holder's own
thread, so a batch in hand finishes on the model it started with, and a version that cannot be
loaded leaves the last good one in service.
"""

from __future__ import annotations

import logging
import threading
import time

from jobs import keys
from jobs.queue import connect
from model.backends import load_predictor
from model.recognise import Predictor
from model.store import ModelStore

log = logging.getLogger(__name__)

VERSION_CHECK_S = 5.0


class ModelHolder:
    """Holds this process's predictor; :attr:`current` is the last version that loaded (or None)."""

    def __init__(self, store: ModelStore, backend: str, threads: int = 0):
        self.store, self.backend, self.threads = store, backend, threads
        self.current: Predictor | None = None
        self._loading = threading.Lock()

    def start(self) -> ModelHolder:
        """Load the active version now, then follow activations on a background thread."""
        self.refresh()
        threading.Thread(target=self._follow_activations, daemon=True, name="model-activation").start()
        return self

    def loaded(self) -> Predictor | None:
        """The model in hand; if none could be loaded yet, one more try first."""
        if self.current is None:
            self.refresh()
        return self.current

    def refresh(self) -> None:
        """Load the active version if it is not the one in hand, then swap it in."""
        with self._loading:
            try:
                active = self.store.ensure_seeded()
            except Exception as exc:  # Redis away: the next check tries again
                log.warning("cannot read the active model version: %s", exc)
                return
            if self.current is not None and self.current.version == active:
                return
            started = time.perf_counter()
            try:
                predictor = load_predictor(self.store, active, self.backend, self.threads)
            except Exception:
                # A broken version must not take the worker down: keep serving what we have.
                serving = getattr(self.current, "version", None)
                log.exception("cannot load model version %s; still serving %s", active, serving)
                return
            self.current = predictor
            seconds = time.perf_counter() - started
            log.info("serving model version %s on %s (loaded in %.2f s)", active, self.backend, seconds)

    def _follow_activations(self) -> None:
        while True:
            try:
                pubsub = connect(socket_timeout=None).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.MODEL_ACTIVATED_CHANNEL)
                while True:
                    # A notice, or every few seconds in case one was missed: the same refresh.
                    pubsub.get_message(timeout=VERSION_CHECK_S)
                    self.refresh()
            except Exception as exc:  # Redis gone: retry
                log.warning("model activation listener: %s; retrying", exc)
                time.sleep(1)
