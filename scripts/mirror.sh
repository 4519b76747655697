#!/usr/bin/env bash
# scripts/mirror.sh: print the Debian mirror this machine's apt sources name,
# the first archive that is not the security one, from the one-line format
# (/etc/apt/sources.list, *.list) or the deb822 one (*.sources). Fails, with
# nothing printed, when there is none. Used by scripts/linux.sh and
# tests/fresh-machine.sh, so that no mirror's host name is written into the
# repository.
set -u
{
  grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/'
  grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -E 's/^URIs:[[:space:]]*//' | tr ' ' '\n'
} | grep -v -e security -e '^$' | head -1 | grep .
