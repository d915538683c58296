"""Device backends behind small protocols (`zeus.device.base`). Nothing else imports a vendor library."""

from zeus.device.base import CPU, GPU, CPUEnergy, GPUCapabilities

__all__ = ["CPU", "GPU", "CPUEnergy", "GPUCapabilities"]
