#!/usr/bin/env bash
# What `make test` prints when the tests failed or ran out of time, so a CI log says why: whether the test servers
# still run (a server that died mid-run fails every later test with "can't connect"), the end of their logs, and the
# machine's memory, disk and out-of-memory kills.
#   scripts/test-diagnostics.sh MARIADB_DIR POSTGRES_DIR STATUS
mariadb_dir=${1:?usage: test-diagnostics.sh MARIADB_DIR POSTGRES_DIR STATUS}
pg_dir=${2:?usage: test-diagnostics.sh MARIADB_DIR POSTGRES_DIR STATUS}
status=${3:-1}
echo "==== tests ended with status $status$([ "$status" = 124 ] && echo ' (the time limit, TEST_TIMEOUT)'); diagnostics:"
pid=$(cat "$mariadb_dir/mariadbd.pid" 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "-- MariaDB ($mariadb_dir) is running"; else echo "-- MariaDB ($mariadb_dir) is NOT running"; fi
echo "-- the end of $mariadb_dir/mariadbd.log:"; tail -40 "$mariadb_dir/mariadbd.log" 2>/dev/null || echo "(none)"
pg_log=$(realpath "$pg_dir/data" 2>/dev/null)/server.log
pg_pid=$(head -1 "$pg_dir/data/postmaster.pid" 2>/dev/null || true)
if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then echo "-- PostgreSQL ($pg_dir) is running"; else echo "-- PostgreSQL ($pg_dir) is NOT running"; fi
echo "-- the end of $pg_log:"; tail -20 "$pg_log" 2>/dev/null || echo "(none)"
echo "-- memory:"; free -m 2>/dev/null || true
echo "-- disk:"; df -h . /tmp 2>/dev/null || true
echo "-- open files limit: $(ulimit -n), processes limit: $(ulimit -u)"
echo "-- kernel: out-of-memory kills and segfaults:"
dmesg 2>/dev/null | grep -iE "out of memory|killed process|oom-kill|segfault" | tail -10 || true
exit 0
