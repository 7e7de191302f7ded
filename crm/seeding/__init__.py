"""A fast generator of large, realistic CRM data sets: what the scale benchmarks and demos run on.

``crm_seed()`` is the entry point (``manage.py crm_seed`` is a thin wrapper around it).
"""

from crm.seeding.progress import Progress
from crm.seeding.runner import SeedRefused, SeedResult, SeedSizes, crm_record_counts, crm_seed

__all__ = ["Progress", "SeedRefused", "SeedResult", "SeedSizes", "crm_record_counts", "crm_seed"]
