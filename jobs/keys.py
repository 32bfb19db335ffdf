"""Every Redis key and channel of the service, in one place: jobs, workers, models, the web's own.

Inspect the store with redis-cli: ``HGETALL digits:job:<id>`` is a job, ``ZRANGE digits:workers
0 -1 WITHSCORES`` the worker registry, ``GET digits:models:active`` the model being served.
"""

from collections.abc import Callable

PREFIX = "digits"


def key(name: str) -> str:
    """The service's key ``name``: ``key("workers")`` is ``digits:workers``."""
    return f"{PREFIX}:{name}"


def keyed(pattern: str) -> Callable[[object], str]:
    """The key of each id: ``keyed("job:{}")("3f0c")`` is ``digits:job:3f0c``. (The whole key's own
    ``format``: a third of the cost of formatting the pattern, then the key, for every job's keys.)"""
    return key(pattern).format


# Where jobs wait for a worker. Predictions wait in two lanes, plain Redis lists of job ids (the
# records hold everything else; see jobs/lanes.py): "predict" for clients with little pending,
# "predict_bulk" for backlogs, taken fast lane first. Training jobs wait in Celery's queue "train"
# (kombu owns that key), and model checks in Celery's queue "predict", which every predict worker
# consumes. A worker's -Q names the lanes and queues it serves.
PREDICT_QUEUE = "predict"
BULK_QUEUE = "predict_bulk"
TRAIN_QUEUE = "train"
PREDICT_QUEUES = (PREDICT_QUEUE, BULK_QUEUE)
QUEUES = (*PREDICT_QUEUES, TRAIN_QUEUE)

# List of the jobs waiting in one prediction lane, oldest first: each entry is a job id, and for a
# job holding several images (an inference request's tensor, jobs/tensors.py) the id, ':' and
# their count, so that a worker takes a batch by images, not by jobs (take_from_lanes.lua and
# create_jobs.lua write and read the same form).
lane = keyed("lane:{}")


def lane_entry(job_id: str, images: int = 1) -> str:
    """The lane entry of a job holding ``images`` images."""
    return job_id if images == 1 else f"{job_id}:{images}"


def job_of_lane_entry(entry: str) -> str:
    """The job id a lane entry names."""
    return entry.partition(":")[0]


def images_of_lane_entry(entry: str) -> int:
    """How many images the job of a lane entry holds."""
    count = entry.partition(":")[2]
    return int(count) if count.isdigit() else 1


def queue_key(name: str) -> str:
    """The Redis list where the jobs of queue ``name`` wait (its depth is the list's length)."""
    return lane(name) if name in PREDICT_QUEUES else name


# --- Jobs -------------------------------------------------------------------------------------

# Published when jobs end: the message is the space-separated ids of the jobs that ended.
JOBS_FINISHED_CHANNEL = key("jobs:finished")

# Sorted set of jobs not yet started, scored by when they were (last) sent to a queue.
QUEUED_JOBS = key("jobs:queued")

# Sorted set of the jobs a worker has taken and not finished, scored by when they were taken (or
# last sent again, when their worker died).
RUNNING_JOBS = key("jobs:running")

# Set of training jobs being run; their heartbeats show whether their worker is alive.
TRAINING_RUNNING = key("jobs:training")

# Sorted set of job ids scored by creation time (for the jobs page); trimmed on write.
RECENT_JOBS = key("jobs:recent")

# Held (SET NX, with expiry) by the one worker that is looking for lost queue messages.
RECOVERY_LOCK = key("jobs:recovery-lock")

# Hash holding one job's record: id, type, status, timestamps, and JSON fields result/error/progress.
job = keyed("job:{}")

# The submitted image's bytes, stored once: the worker reads it from here (messages carry ids
# only); for a tensor job, its whole tensor (jobs/tensors.py). Deleted when the job ends, unless
# the job keeps it for its page (form uploads).
job_image = keyed("job:{}:image")

# List of the job ids one request submitted together, in order.
batch = keyed("batch:{}")

# Sorted set of the ended jobs whose records are kept, scored by when they ended: the oldest are
# forgotten beyond MAX_FINISHED_JOBS (jobs/scripts/forget_finished.lua).
FINISHED_JOBS = key("jobs:finished")

# Sorted set of one client's ended jobs, scored by when they ended (MAX_FINISHED_PER_CLIENT).
finished_by_client = keyed("finished:{}")

# Counter of a batch's jobs that have not ended (absent: all have, or the batch expired): a long
# poll on a batch reads this one key, never its jobs.
batch_unfinished = keyed("batch:{}:unfinished")

# Counter of a client's jobs that have not ended (for the pending-jobs limit).
pending = keyed("pending:{}")

# Counter of the image bytes a client's unfinished jobs hold (for the pending-bytes limit).
pending_bytes = keyed("pending-bytes:{}")

# Counter of a client's unfinished jobs that went in the fast lane (bounds what priority 1 puts there).
pending_fast = keyed("pending-fast:{}")

# Counter of the image bytes all unfinished jobs hold together (for the queued-bytes limit).
QUEUED_BYTES = key("jobs:queued-bytes")

# Cluster-wide metrics, written by whoever ends a job (hashes; see web/cluster_metrics.py).
METRICS_OUTCOMES = key("metrics:outcomes")  # "<type>:<status>" -> count
METRICS_LATENCY = key("metrics:latency")  # bucket upper bound (s) -> count, and "sum"
METRICS_BATCH_SIZE = key("metrics:batch_size")  # bucket upper bound (images) -> count
METRICS_FAILURES = key("metrics:failures")  # "<type>:<error code>" -> count
# Jobs that ended ``expired`` (their deadline passed first), per lane: counted by finish_jobs.lua
# when a job ends with that status, so whoever expires jobs through JobRecords.finish counts them.
METRICS_EXPIRED = key("metrics:expired")  # lane -> count
# Seconds a job waited in its lane before a worker took it, and from then to its end, per lane.
METRICS_QUEUE_WAIT = key("metrics:queue_wait")  # "<lane>:<bucket>" -> count, "<lane>:sum"
METRICS_SERVICE_TIME = key("metrics:service_time")  # "<lane>:<bucket>" -> count, "<lane>:sum"
# Triton's statistics extension for model digits: "<version>:<figure>" -> count or nanoseconds
# (figures: success/fail/queue/compute_input/compute_infer/compute_output ":count" or ":ns",
# "executions", "last_inference" in epoch ms); see web/model_statistics.py.
METRICS_MODEL_STATS = key("metrics:model_stats")

# --- Workers (jobs/workers.py) ----------------------------------------------------------------

# Sorted set of worker process names scored by their last heartbeat (epoch seconds, by Redis's clock: jobs/clock.py).
WORKERS = key("workers")

# Hash describing one worker process: role, model version, pid, memory, heartbeat; expires when silent.
worker = keyed("worker:{}")

# --- Models (model/store.py) ------------------------------------------------------------------

MODEL_VERSIONS = key("models")  # sorted set of versions (score = version number)
MODEL_NEXT_VERSION = key("models:next")  # counter for new version numbers
MODEL_ACTIVE = key("models:active")  # the active version number
MODEL_ACTIVATED_CHANNEL = key("models:activated")  # pub/sub: a version was activated (message: its number)
MODEL_SEED_LOCK = key("models:seeding")  # held by the worker storing the shipped model in an empty store
MODEL_HISTORY = key("models:history")  # list: versions activated, most recent first (where to fall back to)

# The version's card, JSON.
model_card = keyed("model:{}:card")

# The version's model file, bytes.
model_file = keyed("model:{}:file")

# The version's LiteRT export (Keras versions, made when first needed).
model_litert = keyed("model:{}:litert")

# The verdict of checking the version before it may be served (model/check.py), JSON.
model_check = keyed("model:{}:check")

# --- Corrections (jobs/feedback.py) ------------------------------------------------------------

# Sorted set of the jobs that have a correction, scored by when it was given (epoch seconds).
FEEDBACK = key("feedback")

# Hash holding one correction: job_id, label given, label and model version predicted, time, the
# client that gave it, the 28x28 pixels the network saw (784 bytes) and the record's size.
# No TTL: FEEDBACK_RETENTION_SECONDS prunes.
feedback = keyed("feedback:{}")

# Sorted set of the jobs one client (address) gave the correction of, scored by time: its quota
# (MAX_CORRECTIONS_PER_CLIENT), and what an admin deletes to undo one client's corrections.
feedback_of_client = keyed("feedback:client:{}")

# Counter of the bytes all corrections take (for MAX_FEEDBACK_BYTES).
FEEDBACK_BYTES = key("feedback:bytes")

# Hash of the corrections kept now: "<model version>:corrected" / "<model version>:confirmed" -> count.
FEEDBACK_BY_VERSION = key("feedback:by-version")

# Hashes for /metrics: corrections received ("<model version>:<verdict>" -> count, never decremented)
# and predictions made (model version -> count), written by whoever records them.
METRICS_FEEDBACK = key("metrics:feedback")
METRICS_PREDICTIONS = key("metrics:predictions")

# --- The web's own ----------------------------------------------------------------------------

# Counter of the wrong tokens a client address sent in the current minute (expires with it).
token_failures = keyed("token-failures:{}")

# The session-signing key every web process shares when SECRET_KEY is unset (web/security.py).
WEB_SECRET_KEY = key("web:secret_key")

# The submission rate limit's counters are kept under this prefix (web/ratelimit.py).
RATE_LIMIT_PREFIX = key("ratelimit")
