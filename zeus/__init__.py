"""Zeus: cut the energy of recurring GPU training jobs.

Importing :mod:`zeus` touches no hardware; devices are opened only when a monitor or optimizer asks.
"""

__version__ = "0.1.0"
