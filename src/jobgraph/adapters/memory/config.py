"""The deployment's own settings in memory: the ConfigStore port's fake (adapters/dynamodb/config.py)."""

from __future__ import annotations

import os

from jobgraph.adapters.memory.table import MemoryAccess
from jobgraph.adapters.table_layout import PAGE_TOKEN_KEY
from jobgraph.core.models import utc_now_iso


class MemoryConfigStore(MemoryAccess):
    def page_token_secret(self) -> bytes:
        with self.memory.lock:
            item = self.memory.get(PAGE_TOKEN_KEY) or self.memory.put(
                PAGE_TOKEN_KEY, {"secret": os.urandom(32), "created_at": utc_now_iso()}
            )
            return bytes(item["secret"])
