"""WSGI entry point (what `runserver` serves), with the apps' folder on sys.path as manage.py puts it."""

import os
import sys
from pathlib import Path

from django.core.wsgi import get_wsgi_application

_PROJECT = str(Path(__file__).resolve().parent.parent)
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "erp_site.settings")

application = get_wsgi_application()
