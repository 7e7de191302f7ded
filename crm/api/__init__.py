"""The crm app's REST API."""
