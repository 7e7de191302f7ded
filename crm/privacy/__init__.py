"""Privacy requests: a person's data exported or erased on request, and leads anonymised after retention."""
