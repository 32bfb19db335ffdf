"""The contract between web and worker: the Redis keys, job records (and their images), the Celery
queues of job ids, and the worker registry."""
