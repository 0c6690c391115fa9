#!/usr/bin/env bash
# Runs a command in a fresh network namespace that has only a loopback interface, so the
# call test's WebRTC traffic (server, Chromium) can only ever use 127.0.0.1.
set -euo pipefail
if [[ "${INKROOM_IN_NETNS:-}" == "1" ]]; then
  ip link set lo up
  exec "$@"
fi
if ! command -v unshare >/dev/null || ! unshare -n true 2>/dev/null; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "the call test needs a network namespace (run as root, with unshare and iproute2)" >&2
    exit 1
  fi
  echo "== call test SKIPPED: no network namespace here (needs root, unshare, iproute2)"
  exit 0
fi
INKROOM_IN_NETNS=1 exec unshare -n "$0" "$@"
