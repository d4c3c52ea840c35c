# xstilts images. Build one target at a time from the repository root (docs/deploy.md has the commands):
#
#   serve-cpu  slim Python 3.12 with the `serve` extra (onnxruntime CPU, tokenizers, FastAPI); no torch; non-root
#   serve-gpu  NVIDIA CUDA 13.0 runtime + cuDNN 9 (Ubuntu 24.04) with the `gpu` extra (onnxruntime-gpu only, never
#              the CPU onnxruntime) and the TensorRT 10 libraries the TensorRT execution provider links against
#   train      PyTorch 2.13 CUDA 13 image with the `train`, `export`, `serve` and `bench` extras: `xstilts train`,
#              `xstilts export`, and the research grid's Job (`xstilts grid --cell I`: train, export, serve, bench)
#   bundles    busybox with a model repository at /models and nothing else, for an init container
#
# Model bundles are never downloaded when a container starts. The server reads the repository at
# XSTILTS_REPOSITORY=/models: mount one there (Kubernetes: a PersistentVolumeClaim, see k8s/), or bake one into a
# serve image with `--build-arg MODEL_BUNDLES=<folder in the build context>` (default: an empty repository).
#
# Versions are pinned here on purpose: the base images by tag, TensorRT by exact version, Ubuntu's Python by its
# upstream version (3.12.3, with any Ubuntu security rebuild of it); the Python dependencies come from the
# extras in pyproject.toml (onnxruntime and onnxruntime-gpu are pinned exactly there).
#
# The base images are build arguments whose defaults are the real, pinned images: a plain `docker build` uses them.
# A machine without a registry passes a local stand-in instead (`--build-arg PYTHON_IMAGE=...`; tests/container
# builds a Debian one). There is deliberately no `# syntax=docker/dockerfile:1` line: it makes BuildKit pull a
# frontend image before building, which fails without a registry; nothing here needs a newer frontend's features.
ARG PYTHON_IMAGE=python:3.12.12-slim-trixie
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG BUSYBOX_IMAGE=busybox:1.37.0
ARG PYTORCH_IMAGE=pytorch/pytorch:2.13.0-cuda13.2-cudnn9-runtime

# ---------------------------------------------------------------------------------------------------------------------
# serve-cpu
# ---------------------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu-builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml ./
# The CPU server: base dependencies + the `serve` extra (onnxruntime, tokenizers, FastAPI, uvicorn, ...). No torch.
# Dependencies first, in a layer that only pyproject.toml invalidates (installed with an empty placeholder package),
# so that a change to the sources rebuilds in seconds; then the real package replaces the placeholder.
RUN mkdir xstilts && touch xstilts/__init__.py \
    && pip install --no-cache-dir "./[serve]" \
    && rm -rf xstilts build
COPY xstilts ./xstilts
RUN pip install --no-cache-dir --no-deps --force-reinstall .

FROM ${PYTHON_IMAGE} AS serve-cpu
ARG MODEL_BUNDLES=deploy/models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XSTILTS_REPOSITORY=/models \
    XSTILTS_CACHE_DIR=/tmp/xstilts-cache \
    XSTILTS_HOST=0.0.0.0 \
    XSTILTS_PORT=8000 \
    XSTILTS_PROVIDERS=cpu
RUN groupadd --system --gid 10001 xstilts \
    && useradd --system --uid 10001 --gid xstilts --home-dir /home/xstilts --create-home \
       --shell /usr/sbin/nologin xstilts
COPY --from=cpu-builder /opt/venv /opt/venv
COPY ${MODEL_BUNDLES} /models
USER 10001:10001
WORKDIR /home/xstilts
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('XSTILTS_PORT', '8000'), timeout=4)"]
# Exec form: the server is PID 1 and receives SIGTERM itself, then drains for XSTILTS_DRAIN_SECONDS.
ENTRYPOINT ["xstilts"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------------------------------
# serve-gpu
# ---------------------------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu-base
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04's own Python 3.12; the version is pinned to upstream 3.12.3 while admitting Ubuntu's security rebuilds.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       python3.12=3.12.3-1* \
       python3.12-venv=3.12.3-1* \
    && rm -rf /var/lib/apt/lists/*

FROM gpu-base AS gpu-builder
# TensorRT from NVIDIA's pip packages. onnxruntime-gpu 1.31.1 (the `gpu` extra) is built against CUDA 13, cuDNN 9
# and TensorRT 10 (its TensorRT provider links libnvinfer.so.10 and libnvonnxparser.so.10), so TensorRT stays on 10.x.
# The tensorrt-cu13-libs release on PyPI is a stub that resolves to NVIDIA's index, named here directly.
ARG TENSORRT_VERSION=10.16.1.11
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python3.12 -m venv /opt/venv
COPY pyproject.toml ./
COPY xstilts ./xstilts
# The `gpu` extra carries onnxruntime-gpu *instead of* onnxruntime: the two must never share an environment.
RUN pip install --no-cache-dir "./[gpu]" \
    && pip install --no-cache-dir --extra-index-url https://pypi.nvidia.com \
       "tensorrt-cu13-libs==${TENSORRT_VERSION}" \
    && if pip show onnxruntime >/dev/null 2>&1; then echo "onnxruntime (CPU) next to onnxruntime-gpu" >&2; exit 1; fi

FROM gpu-base AS serve-gpu
ARG MODEL_BUNDLES=deploy/models
# tensorrt_libs holds libnvinfer.so.10 and libnvonnxparser.so.10; CUDA, cuBLAS and cuDNN come from the base image.
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.12/site-packages/tensorrt_libs:${LD_LIBRARY_PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    XSTILTS_REPOSITORY=/models \
    XSTILTS_CACHE_DIR=/tmp/xstilts-cache \
    XSTILTS_HOST=0.0.0.0 \
    XSTILTS_PORT=8000 \
    XSTILTS_PROVIDERS=tensorrt,cuda,cpu
RUN groupadd --system --gid 10001 xstilts \
    && useradd --system --uid 10001 --gid xstilts --home-dir /home/xstilts --create-home \
       --shell /usr/sbin/nologin xstilts
COPY --from=gpu-builder /opt/venv /opt/venv
COPY ${MODEL_BUNDLES} /models
USER 10001:10001
WORKDIR /home/xstilts
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('XSTILTS_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["xstilts"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------------------------------
# bundles: a model repository alone, for an init container that copies it into a pod (k8s/examples/models-init-container)
# ---------------------------------------------------------------------------------------------------------------------
FROM ${BUSYBOX_IMAGE} AS bundles
ARG MODEL_BUNDLES=deploy/models
COPY ${MODEL_BUNDLES} /models
USER 10001:10001

# ---------------------------------------------------------------------------------------------------------------------
# train (also runs `xstilts export`)
# ---------------------------------------------------------------------------------------------------------------------
FROM ${PYTORCH_IMAGE} AS train
# The base image's torch 2.13.0 (CUDA 13.2 build) satisfies the `train` extra's torch==2.13.0, so pip keeps it.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PYTHONUNBUFFERED=1 \
    XSTILTS_DATA_DIR=/data \
    XSTILTS_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface
WORKDIR /opt/xstilts
COPY pyproject.toml ./
COPY xstilts ./xstilts
RUN pip install --no-cache-dir "./[train,export,serve,bench]" \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
RUN groupadd --system --gid 10001 xstilts \
    && useradd --system --uid 10001 --gid xstilts --home-dir /home/xstilts --create-home \
       --shell /usr/sbin/nologin xstilts \
    && mkdir -p /data /cache /runs /models \
    && chown 10001:10001 /cache /runs /models
USER 10001:10001
WORKDIR /home/xstilts
# One GPU: `xstilts train CONFIG --output DIR`; several: `torchrun --nproc-per-node N -m xstilts.cli train ...`
# or `accelerate launch -m xstilts.cli train ...` (k8s/jobs/train has the Job).
ENTRYPOINT ["xstilts"]
CMD ["--help"]
