"""Runs localstripe on 127.0.0.1 only, with its store in memory (its own CLI binds every
interface and pickles its store to a fixed file in /tmp on every write).

``python -m tests.billing.run_localstripe PORT``
"""

from __future__ import annotations

import sys

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    port = int(sys.argv[1])
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
