"""The portal's settings with `bench.bare_urls` as the URLconf, for bench/api_history.py.

Everything else (middleware, authentication, throttling, pagination, database) is the portal's.
"""

from peering_portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
