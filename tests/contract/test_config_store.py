"""ConfigStore: the page-token secret is made once per table and read back the same ever after."""

from __future__ import annotations

from jobgraph.core.ports import ConfigStore


def test_the_page_token_secret_is_made_once_and_kept(table: ConfigStore) -> None:
    secret = table.page_token_secret()
    assert isinstance(secret, bytes) and len(secret) == 32
    assert table.page_token_secret() == secret
