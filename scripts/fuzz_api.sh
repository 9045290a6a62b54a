#!/usr/bin/env bash
# Fuzz the API with schemathesis against `make run` (the sandbox and a real worker behind it),
# once as a department member (fiona) and once as an approver (nina): any 5xx, or any answer
# that the OpenAPI schema does not describe (status, content type, headers, body), fails it.
#   bash scripts/fuzz_api.sh [extra schemathesis options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
# The fuzzer sends thousands of calls a minute; the limits themselves are tested in the suite.
# So does the token endpoint, with wrong passwords from one address: lift the login lockout too.
stack_up API_THROTTLE_TOKEN=100000/min API_THROTTLE_USER=100000/min API_THROTTLE_ANON=100000/min API_THROTTLE_AUDIT_VERIFY=100000/min \
  LOGIN_FAILURE_LIMIT=100000 LOGIN_FAILURE_LIMIT_PER_ADDRESS=100000 API_TOKENS_PER_USER=100000
trap 'tail -n 60 "$STACK_LOG"; stack_down' ERR
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
status=0
fuzz() {
  SCHEMATHESIS_HOOKS=scripts.fuzz_hooks .venv/bin/schemathesis run "$BASE/api/schema/" --checks "$CHECKS" --max-examples "${FUZZ_EXAMPLES:-100}" \
    --phases examples,coverage,fuzzing --generation-with-security-parameters false --workers 2 --seed 1 "$@" \
    || status=1
}
# Every token before any fuzzing: the fuzzer's own calls to the token endpoint must not decide
# whether a run can start. Revoking tokens goes last, with a token of its own (it may revoke it).
# The fuzzer learns these names from GET /api/v1/tokens/; scripts/fuzz_hooks.py stops it from
# replacing them with a POST of a token under the same name.
declare -A MAIN LAST
for user in fiona nina; do MAIN[$user]=$(token "$user" fuzz-main); LAST[$user]=$(token "$user" fuzz-revoke); done
for user in fiona nina; do
  echo "==> schemathesis as $user"
  fuzz --header "Authorization: Token ${MAIN[$user]}" --exclude-path-regex 'revoke/$' "$@"
  fuzz --header "Authorization: Token ${LAST[$user]}" --include-path-regex 'revoke/$' "$@"
done
exit $status
