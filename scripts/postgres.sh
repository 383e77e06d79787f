#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 for tests, the demo and benchmarks (Debian's postgresql).
#   scripts/postgres.sh start DIR PORT   -> initialises DIR (if new), starts the server, waits until it answers
#   scripts/postgres.sh stop DIR
#   PORT "auto" takes the first free port from 35432 up. POSTGRES_EXTRA_ARGS: more server options (-c ssl=on ...).
# Prints nothing on success but the URI of the superuser: postgresql://postgres:test@127.0.0.1:PORT/postgres
#
# The server refuses to run as root: initdb and pg_ctl run as the unprivileged `postgres` user the package creates,
# and the data folder's parents must be traversable by it. Where DIR is not (a checkout under a private home), the
# data goes to a folder of its own under /tmp, and DIR keeps a link to it.
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop DIR [PORT]}
dir=${2:?usage: postgres.sh start|stop DIR [PORT]}
dir=$(realpath -m "$dir")
port=${3:-35432}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
  [ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || { echo "PostgreSQL not found: apt-get install -y postgresql" >&2; exit 1; }
  mkdir -p "$dir"
  if [ ! -e "$dir/data" ]; then
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$dir"; then
      ln -s "$(mktemp -d /tmp/binance-extractor-pg.XXXXXX)" "$dir/data"
    else
      mkdir -p "$dir/data"
    fi
  fi
  data=$(realpath "$dir/data")
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data" && chmod 700 "$data"
  if [ -f "$data/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "postgresql://postgres:test@127.0.0.1:$(cat "$dir/port")/postgres"; exit 0
  fi
  auto=false
  if [ "$port" = auto ]; then
    auto=true
    # A server started again in its folder takes its old port when that is free (its clients keep their URL).
    if [ -f "$dir/port" ] && ! port_in_use "$(cat "$dir/port")"; then port=$(cat "$dir/port"); else port=35432; fi
    while port_in_use "$port"; do port=$((port + 1)); done
  elif port_in_use "$port"; then
    echo "port $port on 127.0.0.1 is already in use: stop what listens there or pick another port" >&2; exit 1
  fi
  echo "$port" >"$dir/port"
  if [ ! -f "$data/PG_VERSION" ]; then
    pwfile=$(mktemp); echo test >"$pwfile"; chmod 644 "$pwfile"
    # Password logins over TCP, as the project connects (scram-sha-256), trust on the server's own socket.
    as_postgres "$bin/initdb" -D "$data" -U postgres --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { rm -f "$pwfile"; cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
  fi
  # Throwaway data: relaxed durability is fine (synchronous_commit=off, fsync=off). The server must not keep any
  # descriptor of whoever started this script (a pipe held open would make a reader wait forever for its end).
  # With PORT auto, two starts at once may pick the same free port: the one that loses the bind takes the next.
  started=false
  for _attempt in $(seq 1 20); do
    echo "$port" >"$dir/port"
    if (
      for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
      exec < /dev/null > /dev/null 2>&1
      as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 -o \
        "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data -c synchronous_commit=off -c fsync=off -c max_connections=300 ${POSTGRES_EXTRA_ARGS:-}" start
    ); then
      started=true; break
    fi
    if [ "$auto" = true ] && tail -20 "$data/server.log" | grep -q "Address already in use"; then
      port=$((port + 1))
      while port_in_use "$port"; do port=$((port + 1)); done
      continue
    fi
    break
  done
  [ "$started" = true ] || { echo "PostgreSQL did not start; see $data/server.log:" >&2; tail -20 "$data/server.log" >&2; exit 1; }
  echo "postgresql://postgres:test@127.0.0.1:$port/postgres"
  ;;
stop)
  if [ -e "$dir/data/postmaster.pid" ] && [ -n "$bin" ]; then
    as_postgres "$bin/pg_ctl" -D "$(realpath "$dir/data")" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: postgres.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
