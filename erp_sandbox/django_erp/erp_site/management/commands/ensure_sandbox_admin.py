"""`manage.py ensure_sandbox_admin`: the sandbox's admin superuser, created or updated from the environment.

The name and password come from `DJANGO_ADMIN_USER` / `DJANGO_ADMIN_PASSWORD` (the secrets file, through
`.env`), never from arguments, which every local user can read in the process list. Run again, it resets
the password to the one in the secrets file, so `scripts/setup` keeps the two in step.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or update the sandbox superuser from DJANGO_ADMIN_USER and DJANGO_ADMIN_PASSWORD."

    def handle(self, *args: object, **options: object) -> None:
        username = os.environ.get("DJANGO_ADMIN_USER")
        password = os.environ.get("DJANGO_ADMIN_PASSWORD")
        if not username or not password:
            raise CommandError("DJANGO_ADMIN_USER and DJANGO_ADMIN_PASSWORD must be set (load .env)")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if created or not user.check_password(password) or not (user.is_superuser and user.is_staff and user.is_active):
            user.is_superuser = user.is_staff = user.is_active = True
            user.set_password(password)
            user.save()
            if options.get("verbosity", 1) >= 1:
                self.stdout.write(f"sandbox admin {username!r} {'created' if created else 'updated'}")
