#!/usr/bin/env bash
# The offline demo behind `make run`: a local MariaDB (or PostgreSQL with STORE=postgresql), binance-sim, and the
# extractor's jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
DB_DIR=${DB_DIR:-.build-demo/mariadb}
DB_PORT=${DB_PORT:-auto}
BIN=.build/debug

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# STORE=postgresql (make run STORE=postgresql) runs the same demo on PostgreSQL.
STORE=${STORE:-mariadb}
PG_DIR=${PG_DIR:-.build-demo/postgres}
case "$STORE" in
mariadb)
  say "Starting MariaDB (data in $DB_DIR)"
  uri=$(scripts/mariadb.sh start "$DB_DIR" "$DB_PORT")
  DB_PORT=${uri##*:}; DB_PORT=${DB_PORT%%/*}
  echo "MariaDB on 127.0.0.1:$DB_PORT"
  # A fresh database each time, so the demo always starts from nothing stored.
  mariadb --no-defaults -uroot -ptest -h127.0.0.1 -P"$DB_PORT" -e "DROP DATABASE IF EXISTS binance_demo; CREATE DATABASE binance_demo"
  export DATABASE_URL="mysql://root:test@127.0.0.1:$DB_PORT/binance_demo"
  sql() { mariadb --no-defaults -uroot -ptest -h127.0.0.1 -P"$DB_PORT" binance_demo -t -e "$1"; }
  ;;
postgresql)
  say "Starting PostgreSQL (data in $PG_DIR)"
  uri=$(scripts/postgres.sh start "$PG_DIR" auto)
  DB_PORT=${uri##*:}; DB_PORT=${DB_PORT%%/*}
  echo "PostgreSQL on 127.0.0.1:$DB_PORT"
  PGPASSWORD=test psql -q -h 127.0.0.1 -p "$DB_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS binance_demo WITH (FORCE)" -c "CREATE DATABASE binance_demo"
  export DATABASE_URL="postgresql://postgres:test@127.0.0.1:$DB_PORT/binance_demo"
  sql() { PGPASSWORD=test psql -h 127.0.0.1 -p "$DB_PORT" -U postgres -d binance_demo -c "$1"; }
  ;;
*) echo "STORE=$STORE: use mariadb or postgresql" >&2; exit 2 ;;
esac
unset MYSQL_URI

say "Starting binance-sim (a Binance-compatible server; Binance itself is not reachable here)"
sim_log=$(mktemp)
"$BIN/binance-sim" --port 0 >"$sim_log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 50); do grep -q "listening on" "$sim_log" && break; sleep 0.1; done
api=$(sed -n 's/.*listening on //p' "$sim_log")
echo "binance-sim at $api"

say "Starting a local OTLP receiver (stands in for an OpenTelemetry collector)"
trace_dir=$(mktemp -d)
recv_log=$(mktemp)
"$BIN/otlp-receiver" serve --port 0 --dir "$trace_dir" >"$recv_log" 2>&1 &
recv_pid=$!
trap 'kill $sim_pid $recv_pid 2>/dev/null || true; rm -rf "$sim_log" "$recv_log" "$trace_dir"' EXIT
for _ in $(seq 1 50); do grep -q "listening on" "$recv_log" && break; sleep 0.1; done
export OTEL_EXPORTER_OTLP_ENDPOINT=$(sed -n 's/.*listening on //p' "$recv_log")
echo "OTLP receiver at $OTEL_EXPORTER_OTLP_ENDPOINT"
export BINANCE_FUTURES_API_URL="$api" BINANCE_API_URL="$api" BINANCE_COINM_API_URL="$api" DEFAULT_SYMBOLS="BTCUSDT,ETHUSDT,PEPEUSDT" LOG_LEVEL=warning
# binance-sim serves the public archives (data.binance.vision's tree) too.
export BINANCE_ARCHIVE_URL="$api"

say "First run: futures 15m and 1h, last 24 hours (LOOKBACK_HOURS), tables created on the way"
"$BIN/binance-extractor" klines --timeframes 15m,1h --summary table

say "Backfill of 1h candles for two months: whole closed months and days from the archive files, the rest from REST"
"$BIN/binance-extractor" klines --timeframes 1h --symbols BTCUSDT --start "$(date -u -d '2 months ago' +%Y-%m-01)" --summary json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); [print("  %s %s: %d candles, %d from %d archive files, %d from REST" % (u["symbol"], u["timeframe"], u["written"], u.get("from_archive", 0), u.get("archive_files", 0), u.get("from_rest", u["fetched"]))) for u in d["units"]]'

say "Spot, dry run (fetches and validates, writes nothing)"
"$BIN/binance-extractor" klines --market spot --timeframes 1h --symbols BTCUSDT,ETHUSDT --dry-run --summary table

say "Funding rates since 2024-01-01, aggregate trades of the last hour, and a gap check"
"$BIN/binance-extractor" funding --symbols BTCUSDT,ETHUSDT --start 2024-01-01 --summary table | tail -1
"$BIN/binance-extractor" trades --symbols BTCUSDT --lookback-hours 1 --summary table | tail -1
"$BIN/binance-extractor" gaps --timeframe 15m --dry-run

say "Every series a futures backtest needs: mark, index and premium index candles (1h, since the start of last month)"
"$BIN/binance-extractor" klines --series mark,index,premium --timeframes 1h --symbols BTCUSDT --start "$(date -u -d '1 month ago' +%Y-%m-01)" --summary table

say "A month of open interest and trader ratios (futures_metrics): daily archive files, then REST for today"
"$BIN/binance-extractor" metrics --symbols BTCUSDT --start "$(date -u -d '30 days ago' +%F)" --summary table | tail -1

say "COIN-M: BTCUSD_* is the pair's perpetual and its listed quarterly contracts; then the perpetual's funding"
"$BIN/binance-extractor" klines --market coinm --timeframes 1h --symbols 'BTCUSD_*' --start "$(date -u -d '1 month ago' +%Y-%m-01)" --summary table
"$BIN/binance-extractor" funding --market coinm --symbols BTCUSD_PERP --start "$(date -u -d '1 month ago' +%Y-%m-01)" --summary table | tail -1

say "Second run: resumes from the last stored candle, re-reads one hour, fetches only what is new"
"$BIN/binance-extractor" klines --timeframes 15m,1h --summary table

say "The trace of the second run, as a collector received it"
"$BIN/otlp-receiver" tree "$trace_dir"

say "Live follow: spot's one-second candles from binance-sim's WebSocket streams, for 6 seconds (SIGTERM ends it)"
ws=${api/http:\/\//ws:\/\/}
follow_out=$(mktemp)
"$BIN/binance-extractor" follow --market spot --symbols BTCUSDT,ETHUSDT --timeframes 1s --lookback-hours 1 --ws-url "$ws" \
  --summary json >"$follow_out" 2>/dev/null &
follow_pid=$!
sleep 6
kill -TERM $follow_pid; wait $follow_pid || true
python3 - "$follow_out" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
f = d.get("follow", {})
for u in d["units"]:
    print("  %s %s: %d candles written (%d from final events, the rest by the catch-up), %d confirmed by REST" % (
        u["symbol"], u["timeframe"], u["written"], u.get("from_stream", 0), u.get("confirmed", 0)))
print("  event-to-commit lag: p50 %s ms, p99 %s ms, over %s candles from the stream" % (f.get("lag_p50_ms"), f.get("lag_p99_ms"), f.get("committed_from_stream")))
PY
rm -f "$follow_out"
sql "SELECT symbol, open_time, close_price, number_of_trades FROM spot_klines_s1 ORDER BY open_time DESC, symbol LIMIT 4"

say "What is in $STORE now: binance-extractor coverage (span, rows, rows expected, holes, outages, candles behind)"
"$BIN/binance-extractor" coverage --format table
sql "SELECT symbol, open_time, close_time, open_price, close_price, volume, number_of_trades FROM klines_h1 WHERE symbol = 'PEPEUSDT' ORDER BY open_time DESC LIMIT 3"
sql "SELECT symbol, open_time, open_price, close_price, basic_data_count FROM premium_klines_h1 ORDER BY open_time DESC LIMIT 2"
sql "SELECT symbol, metric_time, sum_open_interest, top_trader_long_short_account_ratio, taker_buy_sell_volume_ratio FROM futures_metrics ORDER BY metric_time DESC LIMIT 2"
sql "SELECT symbol, open_time, close_price, volume_contracts, base_asset_volume FROM coinm_klines_h1 WHERE symbol = 'BTCUSD_PERP' ORDER BY open_time DESC LIMIT 2"

say "Proving it exact: binance-extractor audit (5 random days of BTCUSDT's 1h candles against REST, a HEAD for every file read)"
"$BIN/binance-extractor" audit --timeframes 1h --symbols BTCUSDT --sample 5 --recheck-archives --format table
sql "SELECT path, etag, last_modified, rows_read, rows_written FROM archive_files WHERE table_name = 'klines_h1' ORDER BY path DESC LIMIT 3"

say "Where the data is"
if [ "$STORE" = postgresql ]; then
  cat <<MSG
PostgreSQL is still running with the data: postgresql://postgres:***@127.0.0.1:$DB_PORT/binance_demo (password: test)
  PGPASSWORD=test psql -h 127.0.0.1 -p $DB_PORT -U postgres binance_demo
Its files are in $PG_DIR. Stop it with: make demo-stop
MSG
else
  cat <<MSG
MariaDB is still running with the data: mysql://root:***@127.0.0.1:$DB_PORT/binance_demo (password: test)
  mariadb -uroot -ptest -h127.0.0.1 -P$DB_PORT binance_demo
Its files are in $DB_DIR. Stop it with: make demo-stop
MSG
fi
