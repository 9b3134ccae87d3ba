# The nhiguard worker (and demo) image used by compose.yaml; Kafka itself runs from the official apache/kafka image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
# Every dependency ships manylinux wheels, so the slim image needs no compiler.
RUN pip install . \
 && useradd --system --create-home --home-dir /var/lib/nhiguard nhiguard

# The policies and schemas ship in the wheel (NHIGUARD_POLICIES_DIR points elsewhere, e.g. a mounted bundle);
# worker state (Faust tables, logs) lives in the unprivileged user's home.
ENV NHIGUARD_CACHE_DIR=/var/lib/nhiguard/cache \
    NHIGUARD_DATA_DIR=/var/lib/nhiguard/worker

USER nhiguard
CMD ["nhiguard", "worker"]
