# The bot's image: one process per container (`passgram run`), replicas made by the orchestrator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
RUN pip install . && useradd --system --uid 10001 passgram
USER passgram
EXPOSE 8080
# SIGTERM drains updates in flight (up to 25 s) before exiting.
STOPSIGNAL SIGTERM
CMD ["passgram", "run"]
