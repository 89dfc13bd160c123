"""VEE tables beyond runs and findings: rule-set versions and the exceptions work queue."""

from __future__ import annotations
