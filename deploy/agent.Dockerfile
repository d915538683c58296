# The node agent image, run by deploy/k8s/agent.yaml (a DaemonSet). Build from the repository root:
#   docker build -f deploy/agent.Dockerfile -t zeus-agent:latest .
# It runs as root with CAP_SYS_ADMIN (to change power limits through NVML) and CAP_CHOWN (to give
# its socket to the group of the training pods), every other capability dropped; the NVIDIA
# container runtime provides the driver's NVML library (NVIDIA_DRIVER_CAPABILITIES=utility).
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility

WORKDIR /opt/zeus
COPY pyproject.toml README.md ./
COPY zeus ./zeus
RUN pip install "./[agent]"

# Settings come from ZEUS_AGENT_* variables (see docs/agent.md).
ENV ZEUS_AGENT_GPU=nvml \
    ZEUS_AGENT_SOCKET=/run/zeus/agent.sock \
    ZEUS_AGENT_STATE_DIR=/var/lib/zeus-agent

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["zeus", "agent", "--check"]

CMD ["zeus", "agent"]
