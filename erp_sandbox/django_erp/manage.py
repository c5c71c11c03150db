#!/usr/bin/env python
"""Django's command line for the sandbox ERP. The apps (`products`, `sales`, `inventory`) are top-level
packages next to this file, so their tables are `products_product`, `sales_order`, ... as the sync expects."""

import os
import sys
from pathlib import Path


def main() -> None:
    project = str(Path(__file__).resolve().parent)
    if project not in sys.path:
        sys.path.insert(0, project)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "erp_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
