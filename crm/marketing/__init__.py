"""Marketing: segments (saved filters and static lists of records) and campaigns with their figures."""
