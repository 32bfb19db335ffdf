"""The contract between web and worker: job records in Redis and the Celery queues that carry them."""
