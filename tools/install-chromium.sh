#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests when it is missing (never a downloaded browser).
# Best effort: without root or apt, the browser tests are skipped with the reason.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    && echo "installed Debian's chromium" && exit 0
fi
echo "chromium is not installed and could not be installed here: browser tests will be skipped" >&2
exit 0
