FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
# Every dependency at the version and hash requirements.lock names (uv pip compile; see
# docs/development.md), before the code, so a code change reuses this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md settings.py ./
COPY model ./model
COPY web ./web
COPY worker ./worker
COPY jobs ./jobs
COPY stack ./stack
RUN pip install --no-cache-dir --no-deps .
USER nobody
