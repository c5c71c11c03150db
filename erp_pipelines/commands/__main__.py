"""`python -m erp_pipelines.commands` runs the operator CLI."""

from erp_pipelines.commands.cli import main

main()
