# malipo: the API (and, unless MALIPO_INPROCESS_WORKER=false, the outbox worker) in one image.
#   docker build -t malipo:latest .
#   docker run --env-file .env malipo:latest malipo db upgrade     # migrations, once per release
#   docker run --env-file .env -p 8000:8000 malipo:latest          # the API
#   docker run --env-file .env malipo:latest malipo worker         # a worker alone
# compose.yaml runs all of it with PostgreSQL and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# coredis: the Redis client the rate limiter uses when MALIPO_REDIS_URL is set.
RUN pip install . coredis==6.9.0

# A user of its own, no shell, no home to write to except /app/var (SQLite and generated secrets,
# when no database URL and no secrets are given: a volume there keeps them).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin malipo \
    && mkdir -p /app/var && chown malipo /app/var
USER malipo

ENV MALIPO_HOST=0.0.0.0 \
    MALIPO_PORT=8000 \
    MALIPO_VAR_DIR=/app/var \
    MALIPO_LOG_JSON=true
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["malipo", "serve"]
