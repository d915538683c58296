# Image of the MNIST-style BSO examples, used by deploy/kubeflow/*.yaml. Build from the repository root:
#   docker build -f examples/batch_size_optimizer/mnist/mnist.Dockerfile -t zeus-mnist:latest .
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /workspace
COPY pyproject.toml README.md ./
COPY zeus ./zeus
# The base image brings torch with CUDA; scikit-learn provides the default (digits) dataset.
RUN pip install "./" "scikit-learn>=1.4"
COPY examples/batch_size_optimizer/mnist ./examples/batch_size_optimizer/mnist

CMD ["python", "examples/batch_size_optimizer/mnist/train_single_gpu.py", "--help"]
