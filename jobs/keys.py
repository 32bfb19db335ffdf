"""Every Redis key and channel of the service, in one place: jobs, workers, models, the web's own.

Inspect the store with redis-cli: ``HGETALL digits:job:<id>`` is a job, ``ZRANGE digits:workers
0 -1 WITHSCORES`` the worker registry, ``GET digits:models:active`` the model being served.
"""

PREFIX = "digits"

# Celery's queues; the broker's Redis keys are these names (kombu owns them).
PREDICT_QUEUE = "predict"
TRAIN_QUEUE = "train"
QUEUES = (PREDICT_QUEUE, TRAIN_QUEUE)

# --- Jobs -------------------------------------------------------------------------------------

# Published when jobs end: the message is the space-separated ids of the jobs that ended.
JOBS_FINISHED_CHANNEL = f"{PREFIX}:jobs:finished"

# Sorted set of jobs not yet started, scored by when they were (last) sent to a queue.
QUEUED_JOBS = f"{PREFIX}:jobs:queued"

# Set of training jobs being run; their heartbeats show whether their worker is alive.
TRAINING_RUNNING = f"{PREFIX}:jobs:training"

# Sorted set of job ids scored by creation time (for the jobs page); trimmed on write.
RECENT_JOBS = f"{PREFIX}:jobs:recent"

# Held (SET NX, with expiry) by the one worker that is looking for lost queue messages.
RECOVERY_LOCK = f"{PREFIX}:jobs:recovery-lock"


def job(job_id: str) -> str:
    """Hash holding one job's record: id, type, status, timestamps, and JSON fields result/error/progress."""
    return f"{PREFIX}:job:{job_id}"


def job_image(job_id: str) -> str:
    """The submitted image's bytes, stored once: the worker reads it from here (messages carry ids only).
    Deleted when the job ends, unless the job keeps it for its page (form uploads)."""
    return f"{PREFIX}:job:{job_id}:image"


def batch(batch_id: str) -> str:
    """List of the job ids one request submitted together, in order."""
    return f"{PREFIX}:batch:{batch_id}"


def pending(client: str) -> str:
    """Counter of a client's jobs that have not ended (for the pending-jobs limit)."""
    return f"{PREFIX}:pending:{client}"


def pending_bytes(client: str) -> str:
    """Counter of the image bytes a client's unfinished jobs hold (for the pending-bytes limit)."""
    return f"{PREFIX}:pending-bytes:{client}"


# Counter of the image bytes all unfinished jobs hold together (for the queued-bytes limit).
QUEUED_BYTES = f"{PREFIX}:jobs:queued-bytes"


# Cluster-wide metrics, written by whoever ends a job (hashes; see web/cluster_metrics.py).
METRICS_OUTCOMES = f"{PREFIX}:metrics:outcomes"  # "<type>:<status>" -> count
METRICS_LATENCY = f"{PREFIX}:metrics:latency"  # bucket upper bound (s) -> count, and "sum"
METRICS_BATCH_SIZE = f"{PREFIX}:metrics:batch_size"  # bucket upper bound (images) -> count

# --- Workers (jobs/workers.py) ----------------------------------------------------------------

# Sorted set of worker process names scored by their last heartbeat (epoch seconds).
WORKERS = f"{PREFIX}:workers"


def worker(name: str) -> str:
    """Hash describing one worker process: role, model version, pid, memory, heartbeat; expires when silent."""
    return f"{PREFIX}:worker:{name}"


# --- Models (model/store.py) ------------------------------------------------------------------

MODEL_VERSIONS = f"{PREFIX}:models"  # sorted set of versions (score = version number)
MODEL_NEXT_VERSION = f"{PREFIX}:models:next"  # counter for new version numbers
MODEL_ACTIVE = f"{PREFIX}:models:active"  # the active version number
MODEL_ACTIVATED_CHANNEL = f"{PREFIX}:models:activated"  # pub/sub: a version was activated (message: its number)
MODEL_SEED_LOCK = f"{PREFIX}:models:seeding"  # held by the worker storing the shipped model in an empty store


def model_card(version: int) -> str:
    """The version's card, JSON."""
    return f"{PREFIX}:model:{version}:card"


def model_file(version: int) -> str:
    """The version's model file, bytes."""
    return f"{PREFIX}:model:{version}:file"


def model_litert(version: int) -> str:
    """The version's LiteRT export (Keras versions, made when first needed)."""
    return f"{PREFIX}:model:{version}:litert"


# --- The web's own ----------------------------------------------------------------------------


def token_failures(client: str) -> str:
    """Counter of the wrong tokens a client address sent in the current minute (expires with it)."""
    return f"{PREFIX}:token-failures:{client}"


# The session-signing key every web process shares when SECRET_KEY is unset (web/security.py).
WEB_SECRET_KEY = f"{PREFIX}:web:secret_key"

# flask-limiter's counters are kept under this prefix (web/ratelimit.py).
RATE_LIMIT_PREFIX = f"{PREFIX}:ratelimit"
