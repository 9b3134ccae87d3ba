# The nhiguard worker (and demo) image used by compose.yaml; Kafka itself runs from the official apache/kafka image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the wheel is installed (policies and schemas ship in it); no source tree sits next to it to shadow it.
# Every dependency ships manylinux wheels, so the slim image needs no compiler.
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --system --create-home --home-dir /var/lib/nhiguard nhiguard

# Dev tooling for compose's demo profile (`python -m tools.demo` from this directory); nhiguard never imports it.
COPY tools /opt/nhiguard/tools
WORKDIR /opt/nhiguard

# NHIGUARD_POLICIES_DIR can point at another bundle (e.g. a mounted one); worker state (Faust tables, logs)
# lives in the unprivileged user's home.
ENV NHIGUARD_CACHE_DIR=/var/lib/nhiguard/cache \
    NHIGUARD_DATA_DIR=/var/lib/nhiguard/worker

USER nhiguard
CMD ["nhiguard", "worker"]
