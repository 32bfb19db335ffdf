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
from collections import OrderedDict

from jobs import keys
from jobs.model_store import ModelStore
from jobs.queue import connect
from model.recognise import Predictor
from model.runtimes.loading import load_predictor

log = logging.getLogger(__name__)

VERSION_CHECK_S = 5.0
# Versions other than the active one that requests asked for by number (the inference protocol's
# /versions/<v>/infer), kept loaded: a few, so clients alternating versions cannot make every
# batch a model load, nor fill the worker's memory.
PINNED_VERSIONS = 2


def load_version(store: ModelStore, version: int, backend: str, threads: int = 0) -> Predictor:
    """A predictor for the stored ``version`` on ``backend``; a Keras version's LiteRT export is
    made and stored the first time a LiteRT worker needs it."""
    card, file_bytes = store.card(version), store.file(version)
    if card is None or file_bytes is None:
        raise KeyError(f"model version {version} is not in the store")

    def litert_export() -> bytes:
        from model.runtimes import litert

        flatbuffer = store.litert_file(version)
        if flatbuffer is None:
            flatbuffer = litert.export_in_subprocess(file_bytes)
            store.set_litert_file(version, flatbuffer)
        return flatbuffer

    return load_predictor(file_bytes, card, version, backend, threads, litert_export)


class ModelHolder:
    """Holds this process's predictor: :attr:`current` is the last version that loaded (or None),
    and :attr:`problem` says why it is not the active one, when it is not."""

    def __init__(self, store: ModelStore, backend: str, threads: int = 0):
        self.store, self.backend, self.threads = store, backend, threads
        self.current: Predictor | None = None
        self.problem = ""
        self._failed: int | None = None  # a version that would not load: not tried again while active
        self._loading = threading.Lock()
        self._pinned: OrderedDict[int, Predictor | None] = OrderedDict()  # most recently used last

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

    def version(self, version: int | None) -> Predictor | None:
        """The model that recognises jobs asking for ``version`` (None: the active one); None if that
        version cannot be loaded here (it is not tried again while it stays among the few kept)."""
        current = self.loaded()
        if version is None or (current is not None and current.version == version):
            return current
        if version in self._pinned:
            self._pinned.move_to_end(version)
            return self._pinned[version]
        try:
            predictor = load_version(self.store, version, self.backend, self.threads)
            log.info("loaded model version %s for the requests that name it", version)
        except Exception:
            log.exception("cannot load model version %s, which a request named", version)
            predictor = None
        self._pinned[version] = predictor
        while len(self._pinned) > PINNED_VERSIONS:
            self._pinned.popitem(last=False)
        return predictor

    def refresh(self) -> None:
        """Load the active version if it is not the one in hand, then swap it in. A version that
        will not load leaves the one in hand serving (or, in a process that has none yet, the most
        recently active version that loads), and is not tried again until another is activated."""
        with self._loading:
            try:
                active = self.store.ensure_seeded()
            except Exception as exc:  # Redis away: the next check tries again
                log.warning("cannot read the active model version: %s", exc)
                return
            if self.current is not None and self.current.version == active:
                self.problem, self._failed = "", None
                return
            if active == self._failed:
                return
            try:
                self._swap_in(active)
                self.problem, self._failed = "", None
                return
            except Exception as exc:  # a broken version must not take the worker down
                self._failed = active
                self.problem = f"the active version {active} cannot be loaded ({type(exc).__name__}: {exc})"[:300]
                log.exception("cannot load model version %s", active)
            fallbacks = [v for v in self.store.history() if v != active] if self.current is None else []
            for version in fallbacks:
                try:
                    self._swap_in(version)
                    break
                except Exception:
                    log.exception("cannot load model version %s either", version)
            serving = getattr(self.current, "version", None)
            self.problem += f"; serving version {serving}, the last good one" if serving else "; serving nothing"
            log.warning("%s", self.problem)

    def _swap_in(self, version: int) -> None:
        started = time.perf_counter()
        self.current = load_version(self.store, version, self.backend, self.threads)
        seconds = time.perf_counter() - started
        log.info("serving model version %s on %s (loaded in %.2f s)", version, self.backend, seconds)

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
