"""Email templates (a sandboxed Django template over a record's plain values) and outgoing email."""
