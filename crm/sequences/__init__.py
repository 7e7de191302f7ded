"""Nurturing sequences: enrollments of leads and contacts advanced step by step by a beat task."""
