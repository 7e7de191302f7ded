"""Saved views of the admin's lists: which lists take them (``specs``), their writes and reads
(``services``), the API (``api``) and their own admin (``admin``). The changelists apply them through
``crm.admin.saved_views.SavedViewsMixin``, part of every CRM model admin."""
