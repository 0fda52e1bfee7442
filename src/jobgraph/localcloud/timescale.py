"""The local cloud's time scale: a failed message comes back after seconds, not after AWS's minutes, so a local
rehearsal with faults and retries takes seconds. One place, so every consumer backs off on the same curve: the
Lambda runtime's functions and the ECS tasks (their ``RETRY_BACKOFF_BASE_SECONDS``, services/settings.py) and
the event source poller, for an invocation that failed as a whole (event_sources/poller.py)."""

from __future__ import annotations

# the first retry's delay: then 2, 4 s… (on AWS the functions' RETRY_BACKOFF_BASE_SECONDS, 5 s by default)
LOCAL_RETRY_DELAY_S = 1
