# Sourced by the scripts that drive `make run`: start it on a fresh var/ in its own process group,
# wait until it serves, and stop it the way Ctrl-C in a terminal would.
BASE=http://127.0.0.1:8000
STACK_LOG=$(mktemp)

stack_up() {
  rm -rf var
  env -u DATABASE_URL -u CELERY_BROKER_URL -u AWS_ENDPOINT_URL "$@" setsid make run >"$STACK_LOG" 2>&1 &
  RUN_PID=$!
  trap stack_down EXIT
  for _ in $(seq 1 240); do
    grep -q "Peering Portal is up" "$STACK_LOG" && break
    kill -0 "$RUN_PID" 2>/dev/null || { cat "$STACK_LOG"; echo "make run exited early"; exit 1; }
    sleep 0.5
  done
  grep -q "Peering Portal is up" "$STACK_LOG" || { cat "$STACK_LOG"; echo "make run did not come up"; exit 1; }
}

stack_down() { kill -INT -- "-$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; }

json() { .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# token USER [NAME]: a token named NAME (default login); a new token under a name replaces the old one.
token() { curl -fsS -X POST "$BASE/api/v1/auth/token/" -H 'Content-Type: application/json' \
  -d "{\"username\": \"$1\", \"password\": \"peering-demo\", \"name\": \"${2:-login}\"}" | json '["token"]'; }
