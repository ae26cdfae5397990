# The cxkpi image: one image for every subcommand (worker by default; also generate, produce,
# topics). It talks to Apache Kafka, so the dev-broker extra is not installed.
#
#   docker build -t cxkpi .
#   docker run --rm cxkpi worker --help
#   docker compose up                      # the whole product, see docker-compose.yml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install from a scratch copy of the source, so only the installed package is left in the image.
COPY pyproject.toml README.md /tmp/src/
COPY stream /tmp/src/stream
COPY schemas /tmp/src/schemas

# stream/contract/schemas.py reads the JSON Schemas from Path(__file__).parents[2] / "schemas". For an
# installed (non-editable) package that is site-packages/schemas, and the schemas are not package
# data, so they are copied there.
RUN pip install /tmp/src \
 && cp -r /tmp/src/schemas \
      "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/schemas" \
 && rm -rf /tmp/src \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin cxkpi

# The KPI configuration file: the default `config` setting (cxkpi.toml) is looked up from the
# working directory. Mount your own over /app/cxkpi.toml, or set CXKPI_CONFIG, to change it.
WORKDIR /app
COPY cxkpi.toml ./

# Fail the build, not the container, when the schemas or the configuration cannot be found.
RUN python -c "import stream.contract.schemas; from stream.config.settings import Settings; Settings.load({}, {})"

USER cxkpi

# Listen on every interface so Prometheus (another container) can scrape /metrics.
ENV CXKPI_WEB_HOST=0.0.0.0
EXPOSE 6066

# /health is 200 while the process runs (/ready is 503 on a worker without partitions, e.g. one
# scaled past the partition count). No curl in the slim image, so Python asks; the port follows
# CXKPI_WEB_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CXKPI_WEB_PORT', '6066') + '/health', timeout=4)"]

ENTRYPOINT ["cxkpi"]
CMD ["worker"]
