"""The sandbox ERP's project package: settings, URLs, WSGI entry point and its sandbox management commands."""
