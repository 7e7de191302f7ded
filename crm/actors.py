"""Who acts when no person does: the system actor that commands, migrations, the seeder and jobs pass
to the services, which require an acting user and never read a missing one as "allowed everything"."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class SystemActor:
    """The system: may do what a CRM Admin may, owns nothing and is credited with nothing.

    Services treat it as a superuser for the owner and visibility rules, record no person for its
    changes (the audit trail and stage history say "system"), and give no default owner to what it
    creates. It is a value, not a row: it cannot log in and is never stored.
    """

    pk = None
    id = None
    username = "system"
    is_active = True
    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = True
    is_system = True

    def __str__(self) -> str:
        return "system"

    def __repr__(self) -> str:
        return "SYSTEM"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True

    def has_perms(self, perms, obj: Any = None) -> bool:
        return True


SYSTEM = SystemActor()

Actor = AbstractBaseUser | AnonymousUser | SystemActor


def actor_ensure_given(user: Any) -> None:
    """A service called with ``user=None`` is a programming error, not the system acting: say so."""
    if user is None:
        raise TypeError(
            "A service needs the acting user: pass request.user, or crm.actors.SYSTEM for code that "
            "acts for nobody."
        )


def is_system(user: Any) -> bool:
    return getattr(user, "is_system", False) is True


def person(user: Any):
    """The user to credit with a change: None for the system or an anonymous caller."""
    if user is None or is_system(user) or not user.is_authenticated:
        return None
    return user
