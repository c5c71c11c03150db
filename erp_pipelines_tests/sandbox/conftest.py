"""Makes the shared 4D emulator fixtures available here.

They are imported rather than listed in ``pytest_plugins``: pytest refuses ``pytest_plugins`` in a
conftest below the root once collection has started, which would break a plain ``pytest`` run.
"""

from erp_pipelines_tests.fixtures_legacy_4d import (  # noqa: F401
    legacy4d_seeded,
    legacy4d_server,
    legacy4d_session_store,
    legacy4d_store,
    legacy4d_store_url,
    make_legacy4d_server,
    rest,
)
