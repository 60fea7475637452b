"""The master's web side: the dashboard and ``/metrics`` (see :mod:`.app`)."""

from .app import Dashboard

__all__ = ["Dashboard"]
