FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
COPY pyproject.toml README.md settings.py ./
COPY model ./model
COPY web ./web
COPY worker ./worker
COPY jobs ./jobs
COPY stack ./stack
RUN pip install --no-cache-dir '.[ops]'
USER nobody
