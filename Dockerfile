# syntax=docker/dockerfile:1
# The QA bot service image: `qabot serve` as a non-root user on port 3978.
#
# Migrations are NOT run when the container starts. Run them once per release, before the
# new containers take traffic, with the same image:
#     docker run --rm -e DATABASE_URL=... <image> qabot db upgrade
# (see docs/deploy.md: with two instances, both would race to migrate at start, and the
# service's database role then needs no DDL rights). `qabot serve` refuses to start until
# the schema is at the image's head revision, so a skipped release step fails loudly.
#
# Pin the base by digest in your registry mirror for reproducible builds, e.g.
#     FROM python:3.11.14-slim-bookworm@sha256:<digest>

# ---- build: install the package and its dependencies into a virtualenv -------------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/qabot
# Only what `pip install .` needs: the project file and the service's packages.
COPY pyproject.toml ./
COPY bot ./bot
COPY cards ./cards
COPY flows ./flows
COPY qa ./qa
COPY qabot ./qabot
COPY reports ./reports
COPY scheduler ./scheduler
COPY store ./store
RUN /opt/qabot/bin/pip install --no-compile . \
    && /opt/qabot/bin/qabot --help > /dev/null

# ---- runtime: the virtualenv only, no sources, no build tools ----------------------------
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/qabot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3978 \
    QABOT_LOG_FORMAT=json
RUN groupadd --system --gid 10001 qabot \
    && useradd --system --uid 10001 --gid qabot --home-dir /var/lib/qabot --create-home \
       --shell /usr/sbin/nologin qabot
COPY --from=build /opt/qabot /opt/qabot
WORKDIR /var/lib/qabot
USER 10001:10001
EXPOSE 3978
# Liveness only; readiness (database, scheduler, sender) is GET /readyz for the platform.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3978'), timeout=4)"]
CMD ["qabot", "serve"]
