# The BSO server image. Build from the repository root:
#   docker build -f deploy/server.Dockerfile -t zeus-bso-server .
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns nothing but the data directory (the default SQLite database lives there).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin zeus \
    && install -d -o zeus -g zeus /data

WORKDIR /opt/zeus
COPY pyproject.toml README.md ./
COPY zeus ./zeus
RUN pip install "./[server]"

USER 10001
WORKDIR /data

# Settings come from ZEUS_BSO_* variables (see docs/bso-server.md). Migrations run at start.
ENV ZEUS_BSO_HOST=0.0.0.0 \
    ZEUS_BSO_PORT=8000 \
    ZEUS_BSO_MIGRATE=true \
    ZEUS_BSO_DATABASE_URL=sqlite:////data/zeus_bso.db

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ZEUS_BSO_PORT', '8000'), timeout=4)"]

CMD ["zeus", "serve"]
