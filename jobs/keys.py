"""Every Redis key and channel that job handling uses, in one place (model keys: ``model/store.py``).

Inspect a job with ``redis-cli HGETALL digits:job:<id>``.
"""

PREFIX = "digits"

# Celery's own lists (queue names); the Redis keys of the broker are these names.
PREDICT_QUEUE = "predict"
TRAIN_QUEUE = "train"

# Published by workers when jobs end: the message is the space-separated ids of the finished jobs.
JOBS_FINISHED_CHANNEL = f"{PREFIX}:jobs:finished"

# Sorted set of jobs not yet started, scored by when they were (last) queued.
QUEUED_JOBS = f"{PREFIX}:jobs:queued"

# Set of training jobs being run; workers check their heartbeats to fail the ones whose worker died.
TRAINING_RUNNING = f"{PREFIX}:jobs:training"

# Sorted set of job ids scored by creation time (for the jobs page); trimmed on write.
RECENT_JOBS = f"{PREFIX}:jobs:recent"


def job(job_id: str) -> str:
    """Hash holding one job's record: id, type, status, timestamps, and JSON fields result/error/progress."""
    return f"{PREFIX}:job:{job_id}"


def batch(batch_id: str) -> str:
    """List of the job ids one request submitted together, in order."""
    return f"{PREFIX}:batch:{batch_id}"


def job_payload(job_id: str) -> str:
    """What the job's queue message carries (base64 image, or JSON training parameters), kept
    until the job ends so a lost message can be sent again. Must be ``job(job_id) + ":payload"``."""
    return f"{PREFIX}:job:{job_id}:payload"


def job_upload(job_id: str) -> str:
    """The bytes of an image submitted through the HTML form, kept so its job page can show it."""
    return f"{PREFIX}:job:{job_id}:upload"


# Sorted set of worker process names scored by their last heartbeat (epoch seconds).
WORKERS = f"{PREFIX}:workers"


def worker(name: str) -> str:
    """Hash describing one worker process: model version, pid, resident memory, heartbeat; expires when silent."""
    return f"{PREFIX}:worker:{name}"


def pending(client: str) -> str:
    """Counter of a client's jobs that have not ended (for the pending-jobs limit)."""
    return f"{PREFIX}:pending:{client}"


# Cluster-wide metrics, written by whoever ends a job (hashes; see web/metrics.py).
METRICS_OUTCOMES = f"{PREFIX}:metrics:outcomes"  # "<type>:<status>" -> count
METRICS_LATENCY = f"{PREFIX}:metrics:latency"  # bucket upper bound (s) -> count, and "sum"
METRICS_BATCH_SIZE = f"{PREFIX}:metrics:batch_size"  # bucket upper bound (images) -> count
