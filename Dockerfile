# The colretrieve API service (CPU image). Built by docker-compose.yml as the `api` service.
#
# `colretrieve serve` arrives with the server issue; until then this image is also the
# place to run `colretrieve index` / `colretrieve migrate` against the cluster
# (`docker compose run --rm api colretrieve ...`). Configuration is COLRETRIEVE_* env only:
# no secrets are baked in.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/models \
    HF_HUB_DISABLE_PROGRESS_BARS=1

WORKDIR /app
# Dependencies first so code edits do not re-download torch. The CPU wheel index keeps the
# image free of CUDA libraries; on a GPU host build FROM a CUDA base and drop the index URL.
COPY pyproject.toml README.m[d] ./
COPY colretrieve ./colretrieve
COPY indexer ./indexer
COPY server ./server
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[qdrant]"

RUN useradd --create-home --uid 10001 colretrieve && mkdir -p /models /data \
    && chown colretrieve /models /data
USER colretrieve

EXPOSE 8000
CMD ["colretrieve", "serve", "--host", "0.0.0.0", "--port", "8000"]
