#!/usr/bin/env bash
# A throwaway PostgreSQL server on localhost for the tests that need a real one (tune's shared storage).
#   eval "$(scripts/postgres.sh start)"   # starts it; exports NNRECIPE_TEST_POSTGRES (a URL) and NNRECIPE_PG_DIR
#   scripts/postgres.sh stop              # stops it and removes its folder ($NNRECIPE_PG_DIR)
# `start` installs Debian's postgresql package when no server binaries are found and apt-get can run (root).
# The server runs as the `postgres` user when this script runs as root (postgres refuses root), in a fresh
# temporary folder, on a free port of 127.0.0.1, with trust authentication: for tests only.
# Messages go to stderr; `start` prints only the export lines, and exits 1 when no server could be started.
set -euo pipefail

say() { echo "postgres.sh: $*" >&2; }

bindir() {  # Debian keeps the server's tools in /usr/lib/postgresql/VERSION/bin, off the PATH
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/createdb" ] && { echo "$d"; return; }
    done
    return 1
}

install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "no PostgreSQL server binaries (initdb, pg_ctl), and apt-get cannot install them here"; return 1
    fi
    say "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; } >&2 || return 1
}

start() {
    local bin dir port as=()
    bin=$(bindir) || { install && bin=$(bindir); } || { say "PostgreSQL is not available"; exit 1; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/nnrecipe-postgres.XXXXXX")
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { say "running as root and there is no 'postgres' user to run the server"; exit 1; }
        chown postgres "$dir"
        as=(runuser -u postgres --)
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -N >"$dir/initdb.log" 2>&1 \
        || { say "initdb failed: $(tail -3 "$dir/initdb.log")"; rm -rf "$dir"; exit 1; }
    # fsync off: a test server's data may be lost on a crash, never wanted after the tests
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" start >&2 \
        || { say "the server did not start: $(tail -3 "$dir/server.log")"; rm -rf "$dir"; exit 1; }
    "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres nnrecipe_test >&2 \
        || { say "createdb failed"; NNRECIPE_PG_DIR=$dir stop; exit 1; }
    say "server on 127.0.0.1:$port, folder $dir"
    echo "export NNRECIPE_PG_DIR='$dir'"
    echo "export NNRECIPE_TEST_POSTGRES='postgresql://postgres@127.0.0.1:$port/nnrecipe_test'"
}

stop() {
    local dir="${NNRECIPE_PG_DIR:-}" bin as=()
    [ -n "$dir" ] && [ -d "$dir/data" ] || { say "nothing to stop (NNRECIPE_PG_DIR is not a server folder)"; return 0; }
    bin=$(bindir)
    [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || say "pg_ctl stop failed; see $dir/server.log"
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
