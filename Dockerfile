# The bot as a container image: `docker build -t stylebot .` then see deploy/container.md.
#
# BASE: any Debian-like image with python3 (and python3-venv). The default matches .python-version;
# bin/container-test builds a local Debian bookworm one (debootstrap) where no registry image is reachable.
ARG BASE=python:3.11-slim

# --- builder: a venv with the dependencies, and the weights -------------------------------------------
FROM ${BASE} AS builder
# TORCH: a pip requirement for torch (a wheel file or URL, or name==version). Empty (the default): the pin
# in requirements.txt from TORCH_INDEX, PyTorch's CPU wheels (the index's +cpu build, no CUDA: ~700 MB
# installed instead of ~5 GB). bin/container-test passes a local 2.13.0+cpu wheel through a build mount.
ARG TORCH=""
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# WEIGHTS: "build" makes vgg19_cache.pth the way Heroku's bin/post_compile does (torchvision + one ~550 MB
# download, sha256-checked; only the 2 MB result reaches the image). A path: an existing file given through
# a build mount (podman build -v DIR:/weights-in:ro --build-arg WEIGHTS=/weights-in/vgg19_cache.pth),
# checked and copied in. "none": the image has no weights; mount the file at /app/vgg19_cache.pth at run
# time (or set STYLEBOT_WEIGHTS to where it is); without it the container exits at once naming the path.
ARG WEIGHTS=build
# PIP_CERT: a CA bundle for pip, for a build behind a TLS-intercepting proxy; give it through a build
# mount (podman build -v /etc/ssl/certs:/host-certs:ro --build-arg PIP_CERT=/host-certs/ca-certificates.crt),
# never baked into the image.
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CERT=${PIP_CERT} PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY requirements.txt requirements-scale.txt ./
RUN set -eu; \
    pin="$(sed -n 's/^torch==\([^ ]*\).*/\1/p' requirements.txt)"; \
    if [ -n "$TORCH" ]; then /opt/venv/bin/pip install "$TORCH"; \
    else /opt/venv/bin/pip install --index-url "$TORCH_INDEX" "torch==$pin"; fi; \
    grep -v -E '^(--extra-index-url|torch==|torchvision==)' requirements.txt > /tmp/app-requirements.txt; \
    /opt/venv/bin/pip install -r /tmp/app-requirements.txt -r requirements-scale.txt; \
    /opt/venv/bin/python -c "import numpy, torch; torch.zeros(1).numpy(); print('torch', torch.__version__)"
COPY . /app
RUN set -eu; \
    case "$WEIGHTS" in \
    build) \
        tv="$(sed -n 's/^torchvision==\([^ ]*\).*/\1/p' requirements.txt)"; \
        /opt/venv/bin/pip install --index-url "$TORCH_INDEX" "torchvision==$tv"; \
        /opt/venv/bin/python weights.py build /app/vgg19_cache.pth --download-dir /tmp/vgg19; \
        rm -rf /tmp/vgg19; /opt/venv/bin/pip uninstall -y torchvision ;; \
    none) ;; \
    /*) cp "$WEIGHTS" /app/vgg19_cache.pth && /opt/venv/bin/python weights.py check /app/vgg19_cache.pth ;; \
    *) echo "WEIGHTS must be build, none or an absolute path to vgg19_cache.pth, not '$WEIGHTS'" >&2; exit 1 ;; \
    esac; \
    rm -rf /app/tests /app/bench /app/docs; \
    find /opt/venv /app -name __pycache__ -prune -exec rm -rf {} +

# --- the image: the venv and the app, no compilers, a non-root user ---------------------------------
FROM ${BASE}
ARG TORCH=""
LABEL org.opencontainers.image.title="stylebot" \
      org.opencontainers.image.description="Telegram bot that repaints a photo in the style of another picture"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STYLEBOT_DATA_DIR=/data \
    STYLEBOT_TORCH_OVERRIDE=${TORCH}
RUN groupadd --system --gid 10001 stylebot \
    && useradd --system --uid 10001 --gid stylebot --home-dir /app --shell /usr/sbin/nologin stylebot \
    && mkdir -p /data && chown stylebot:stylebot /data && chmod 0700 /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER stylebot
VOLUME ["/data"]
# Polling mode has no port; the webhook process listens on $PORT (8080).
EXPOSE 8080
# Asks the running bot: the store opens and a worker heartbeat is fresh (webhook: GET /healthz).
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["python", "-m", "stylebot.healthcheck"]
ENTRYPOINT ["bin/docker-entrypoint"]
CMD ["bot"]
