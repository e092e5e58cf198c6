# patronlink's container image, built from this repository: `docker build -t patronlink .`
# One image for every role: `patronlink serve` (the default), `patronlink worker`,
# `patronlink db upgrade`. docs/deployment.md explains the settings.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The virtual environment lives at the same path in both stages, so its scripts keep working.
RUN python -m venv /opt/patronlink
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/patronlink/bin/pip install /src

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/patronlink --create-home \
        --shell /usr/sbin/nologin patronlink
COPY --from=build /opt/patronlink /opt/patronlink
ENV PATH=/opt/patronlink/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PATRONLINK_HOST=0.0.0.0 \
    PATRONLINK_PORT=8000 \
    PATRONLINK_DATABASE_URL=sqlite:////var/lib/patronlink/patronlink.db
WORKDIR /var/lib/patronlink
# Never root: the process owns nothing but its home (the SQLite database, when there is one).
USER 10001:10001
EXPOSE 8000
# /healthz answers while the process serves; python is in the image, curl is not.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PATRONLINK_PORT', '8000') + '/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["patronlink", "serve"]
