"""Django's user admin, with deleting a user routed through the service that deletes records.

A user's records keep existing without an owner (SET_NULL); ``record_delete`` moves the
win-probability counts of the closed ones among them, which a plain ``user.delete()`` would miss.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from crm import services

User = get_user_model()


class UserAdmin(DjangoUserAdmin):
    def delete_model(self, request, obj):
        services.record_delete(instance=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, UserAdmin)
