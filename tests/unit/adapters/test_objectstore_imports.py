"""The aiobotocore adapter loads only when chosen: a process on obstore never pays for botocore."""

from __future__ import annotations

import subprocess
import sys

from exchange.adapters.objectstore import make_object_store
from exchange.settings import ObjectStoreSettings, Secret


def _modules_after(code: str) -> set[str]:
    # A fresh interpreter: this test process has long imported everything.
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_the_server_and_the_cli_start_without_botocore_or_aiohttp() -> None:
    loaded = _modules_after("import exchange.bootstrap, exchange.cli, exchange.ops_cli, exchange_stack")
    assert "exchange.adapters.objectstore" in loaded  # the check below would mean nothing otherwise
    assert not {"botocore", "aiobotocore", "aiohttp"} & loaded


def test_the_aiobotocore_adapter_is_still_there_by_name_and_by_setting() -> None:
    from exchange.adapters.objectstore import AiobotocoreObjectStore  # the lazy name

    settings = ObjectStoreSettings(endpoint="http://127.0.0.1:1", client="aiobotocore", access_key_id=Secret("a"),
                                   secret_access_key=Secret("s"))
    assert isinstance(make_object_store(settings), AiobotocoreObjectStore)
