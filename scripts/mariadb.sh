#!/usr/bin/env bash
# A throwaway MariaDB on 127.0.0.1 for tests, the demo and benchmarks.
#   scripts/mariadb.sh start DIR PORT   -> initialises DIR (if new), starts mariadbd, waits until it answers
#   scripts/mariadb.sh stop DIR
#   PORT "auto" takes the first free port from 33306 up. MARIADB_EXTRA_ARGS: more server options (e.g. --ssl-cert=...).
# Prints nothing on success but the URI of the root account: mysql://root:test@127.0.0.1:PORT/mysql
set -euo pipefail
cmd=${1:?usage: mariadb.sh start|stop DIR [PORT]}
dir=${2:?usage: mariadb.sh start|stop DIR [PORT]}
dir=$(realpath -m "$dir")  # mariadbd resolves relative paths from its basedir, not here
port=${3:-33306}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
auto=false

case "$cmd" in
start)
  if [ -f "$dir/port" ] && [ -f "$dir/mariadbd.pid" ] && kill -0 "$(cat "$dir/mariadbd.pid")" 2>/dev/null; then
    port=$(cat "$dir/port")
  elif [ "$port" = auto ]; then
    auto=true
    # A server started again in its folder takes its old port when that is free (its clients keep their URL).
    if [ -f "$dir/port" ] && ! port_in_use "$(cat "$dir/port")"; then port=$(cat "$dir/port"); else port=33306; fi
    while port_in_use "$port"; do port=$((port + 1)); done
  elif port_in_use "$port"; then
    echo "port $port on 127.0.0.1 is already in use: stop what listens there or pick another port" >&2; exit 1
  fi
  command -v mariadbd >/dev/null || { echo "mariadbd not found: apt-get install -y mariadb-server" >&2; exit 1; }
  # A temporary folder of its own: two servers bootstrapping at once in /tmp can name their internal temporary tables
  # alike and remove each other's ("Could not remove temporary table … error: 2").
  mkdir -p "$dir/tmp"
  echo "$port" >"$dir/port"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --tmpdir="$dir/tmp" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
  fi
  if [ -f "$dir/mariadbd.pid" ] && kill -0 "$(cat "$dir/mariadbd.pid")" 2>/dev/null; then
    echo "mysql://root:test@127.0.0.1:$port/mysql"; exit 0
  fi
  # Throwaway data: relaxed durability is fine (innodb-flush-log-at-trx-commit=2). The server must not keep any
  # descriptor of whoever started this script (a pipe held open would make a reader wait forever for its end).
  # With PORT auto, two starts at once may pick the same free port: the one that loses the bind takes the next.
  for _attempt in $(seq 1 20); do
    echo "$port" >"$dir/port"
    (
      for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
      exec mariadbd --no-defaults --user=root --datadir="$dir/data" --tmpdir="$dir/tmp" --socket="$dir/mariadbd.sock" --port="$port" \
      --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin --innodb-flush-log-at-trx-commit=2 \
      --innodb-buffer-pool-size=256M --max-connections=500 --pid-file="$dir/mariadbd.pid" ${MARIADB_EXTRA_ARGS:-}
    ) </dev/null >"$dir/mariadbd.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
      if mariadb --no-defaults -uroot -ptest --socket="$dir/mariadbd.sock" -e "SELECT 1" >/dev/null 2>&1; then
        echo "mysql://root:test@127.0.0.1:$port/mysql"; exit 0
      fi
      # A new data folder: give root a password for TCP logins, as the project connects.
      if mariadb --no-defaults -uroot --socket="$dir/mariadbd.sock" -e \
          "ALTER USER 'root'@'localhost' IDENTIFIED BY 'test'; ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'test';" >/dev/null 2>&1; then
        echo "mysql://root:test@127.0.0.1:$port/mysql"; exit 0
      fi
      kill -0 "$server" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$auto" = true ] && ! kill -0 "$server" 2>/dev/null && grep -q "Address already in use" "$dir/mariadbd.log"; then
      port=$((port + 1))
      while port_in_use "$port"; do port=$((port + 1)); done
      continue
    fi
    break
  done
  echo "MariaDB did not start; see $dir/mariadbd.log:" >&2; tail -20 "$dir/mariadbd.log" >&2; exit 1
  ;;
stop)
  if [ -f "$dir/mariadbd.pid" ]; then
    pid=$(cat "$dir/mariadbd.pid"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  ;;
*) echo "usage: mariadb.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
