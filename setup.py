from setuptools import find_packages, setup

setup(
    name="erp_pipelines",
    version="0.1.0",
    description="One-way sync of an IBM i (AS400) database and a 4D legacy ERP into PostgreSQL, on Dagster.",
    packages=find_packages(exclude=["erp_pipelines_tests", "erp_pipelines_tests.*", "benchmarks"]),
    package_data={"erp_pipelines": ["migrations/*.ini", "migrations/*.mako", "migrations/versions/*.py"]},
    python_requires=">=3.10,<3.15",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-postgres==0.29.27",
        "pandera==0.35.0",
        "pandas==3.1.1",
        "pyarrow==26.0.1",
        "sqlalchemy==2.1.9",
        "psycopg2-binary==2.9.13",
        "alembic==1.20.1",
        "pyodbc==5.5.0",
        "arrow-odbc==10.6.2",
        # EBCDIC code pages Python lacks (cp277, cp278, cp280, cp284, cp285, cp297, cp871, cp1141-cp1149)
        "ebcdic==2.0.1",
        "pgpq==0.12.0",
        "requests==2.34.2",
        "click>=8.1",
        # the sandbox's application (erp_sandbox/django_erp): the ERP the sync writes into
        "Django==5.2.19",
    ],
    extras_require={
        "dev": [
            "dagster-dg-cli==1.13.27",
            # model-based tests (erp_pipelines_tests/model): stateful testing, seeded and shrinking
            "hypothesis==6.170.15",
            "pytest==9.0.3",
            "pytest-timeout==2.4.0",
            "ruff==0.17.5",
            # browser tests of the Dagster UI (Debian's chromium + chromium-driver); 4.52.0 needs a certifi
            # newer than any published yet
            "selenium==4.51.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "erp-sync=erp_pipelines.commands.cli:main",
            "erp-4d-emulator=erp_sandbox.legacy_4d.server:main",
        ]
    },
)
