"""Notifications: services (notify, mark read), selectors, the consumers of domain events, email, the
API and the admin pages. Kinds about opportunities and activities live in sales/ and activities/,
which register their consumers and periodic tasks with crm's registries."""
