# All-in-one training-node image: CUDA, PyTorch, Zeus with its torch extra, and the examples.
# Build from the repository root:
#   docker build -f deploy/training.Dockerfile -t zeus-training .
# Run as an unprivileged user with no capability: power limits change through the node agent
# (`zeus agent`, deploy/systemd/ or deploy/k8s/agent.yaml), reached through its socket; the user
# joins the socket's group (here 2000):
#   docker run --rm --gpus all --ipc host --user 1000:1000 --group-add 2000 \
#     -v /run/zeus:/run/zeus:ro -e ZEUS_GPU=agent:/run/zeus/agent.sock \
#     -e ZEUS_JOB_ID=mnist-nightly -e ZEUS_BSO_SERVER_URL=http://bso-host:8000 \
#     zeus-training python examples/batch_size_optimizer/mnist/train_single_gpu.py
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The interpreter is whatever Python the pinned base image's Ubuntu release ships.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /workspace
COPY pyproject.toml README.md ./
COPY zeus ./zeus
# The torch wheels on PyPI bundle their CUDA runtime; scikit-learn provides the examples' dataset.
RUN pip install "./[torch]" "scikit-learn>=1.4"
COPY examples ./examples

CMD ["zeus", "show-env"]
