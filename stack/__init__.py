"""Starting the service's processes: an embedded Redis, Celery workers and gunicorn (``python -m stack``)."""
