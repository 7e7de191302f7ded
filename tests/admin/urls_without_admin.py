"""A URL configuration without the admin, for tests/admin/test_admin_links.py."""

urlpatterns: list = []
