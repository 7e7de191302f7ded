"""Customer service: tickets and their threads, SLA policies in business hours, queues and intake."""
