# The tonewatch image: the faust worker, the API and the retrain worker differ only by command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --requirement requirements.lock
COPY pyproject.toml README.md ./
COPY tonewatch ./tonewatch
COPY streams ./streams
COPY inference ./inference
COPY storage ./storage
COPY retrain ./retrain
RUN pip install --no-deps . \
    && useradd --uid 10001 --create-home tonewatch \
    && mkdir -p /var/lib/tonewatch && chown tonewatch /var/lib/tonewatch
USER tonewatch
CMD ["tonewatch", "--help"]
