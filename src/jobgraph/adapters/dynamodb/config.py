"""The deployment's own settings kept in its table: the ConfigStore port on DynamoDB.

pk = CONFIG#page-tokens  sk = SECRET   the status API's pagination-token secret (no TTL)
"""

from __future__ import annotations

import os

from jobgraph.adapters import table_layout as layout
from jobgraph.adapters.dynamodb.table import TableAccess, typed_key
from jobgraph.core.errors import JobGraphError
from jobgraph.core.models import utc_now_iso

PAGE_TOKEN_KEY = typed_key(layout.PAGE_TOKEN_KEY)


class DynamoConfigStore(TableAccess):
    def page_token_secret(self) -> bytes:
        """32 random bytes per deployment (table), made once by whichever API call first needs them."""
        for _ in range(2):
            item = self.client.get_item(TableName=self.table_name, Key=PAGE_TOKEN_KEY, ConsistentRead=True).get("Item")
            if item:
                return bytes(item["secret"]["B"])
            # no expires_at: the table's TTL never removes it, so tokens stay valid while the table lives
            self._put_new({**PAGE_TOKEN_KEY, "secret": {"B": os.urandom(32)}, "created_at": {"S": utc_now_iso()}})
        raise JobGraphError(f"{self.table_name}: the page-token secret could not be read or made")
