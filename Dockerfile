# smec-compress service: CPU-only, non-root. Build: docker build -t smec-compress .
# Run:   docker run -p 8000:8000 -v "$PWD/head:/head:ro" -v smec-data:/data smec-compress

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU torch first, pinned, from the PyTorch CPU index, so the project's "torch>=2.13" is already
# met and pip never pulls the multi-GB CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY smec_compress ./smec_compress
COPY service ./service
RUN pip install --no-cache-dir . \
 && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SMEC_HEAD_DIR=/head \
    SMEC_DATA_DIR=/data
RUN groupadd --system --gid 10001 smec \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --create-home --home-dir /home/smec smec \
 && mkdir -p /data /head \
 && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/smec
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
CMD ["smec-compress", "serve", "--host", "0.0.0.0", "--port", "8000"]
