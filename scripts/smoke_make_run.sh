#!/usr/bin/env bash
# Start `make run` on a fresh var/ and walk one request through it with curl, as an operator
# would: token → file → approve → active in the sandbox → Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
LOG=$STACK_LOG
stack_up
cleanup() { stack_down; }
trap 'tail -n 80 "$LOG"; cleanup' ERR
curl -fsS "$BASE/healthz"; echo

FIONA=$(token fiona); NINA=$(token nina)
vpc() { curl -fsS -H "Authorization: Token $FIONA" "$BASE/api/v1/vpcs/?name=$1" | json "['results'][0]['vpc_id']"; }
# finance-app already peers with services-use1 in the demo history (DEMO-101): peer with the EU hub.
FIN=$(vpc finance-app); HUB=$(vpc services-euw1)
ID=$(curl -fsS -X POST "$BASE/api/v1/peering-requests/" -H "Authorization: Token $FIONA" -H 'Content-Type: application/json' \
  -d "{\"requester_vpc\": \"$FIN\", \"accepter_vpc\": \"$HUB\", \"justification\": \"smoke\", \"external_ref\": \"SMOKE-1\"}" | json '["id"]')
curl -fsS -X POST "$BASE/api/v1/peering-requests/$ID/approve/" -H "Authorization: Token $NINA" \
  -H 'Content-Type: application/json' -d '{"comment": "ok"}' >/dev/null
for _ in $(seq 1 120); do
  STATUS=$(curl -fsS -H "Authorization: Token $FIONA" "$BASE/api/v1/peering-requests/$ID/" | json '["status"]')
  [ "$STATUS" = active ] || [ "$STATUS" = failed ] && break
  sleep 0.5
done
echo "request $ID is $STATUS"
[ "$STATUS" = active ] || { cat "$LOG"; exit 1; }
PCX=$(curl -fsS -H "Authorization: Token $FIONA" "$BASE/api/v1/peering-requests/$ID/" | json '["aws_peering_connection_id"]')
AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
  .venv/bin/python - "$PCX" <<'PY'
import sys, boto3
creds = boto3.client("sts").assume_role(RoleArn="arn:aws:iam::222222222222:role/PeeringPortalRole", RoleSessionName="smoke")["Credentials"]
ec2 = boto3.client("ec2", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
found = [p for p in ec2.describe_vpc_peering_connections()["VpcPeeringConnections"] if p["VpcPeeringConnectionId"] == sys.argv[1]]
assert found and found[0]["Status"]["Code"] == "active", found
print("sandbox agrees:", sys.argv[1], "is active")
PY

cleanup
trap - EXIT
for _ in $(seq 1 60); do
  pgrep -f "moto.server -H 127.0.0.1 -p 4566|celery -A peering_portal|gunicorn peering_portal" >/dev/null || break
  sleep 0.5
done
if pgrep -f "moto.server -H 127.0.0.1 -p 4566|celery -A peering_portal|gunicorn peering_portal" >/dev/null; then
  echo "Ctrl-C left processes behind:"; pgrep -af "moto.server|celery -A peering_portal|gunicorn"; exit 1
fi
echo "make run smoke: ok (1 passed, 0 failed)"
