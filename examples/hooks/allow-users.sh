#!/bin/sh
# An authorisation hook (agent.toml or dispatcher.toml: hook = ...): allow
# only the users listed below; deny everyone else with a reason.
#
# A hook gets the request as JSON on stdin and as MUSTER_* variables
# (MUSTER_USERNAME, MUSTER_ACTION, MUSTER_REQUEST_ID, ...). Its exit status
# decides: 0 allows, 1 denies, 2 denies with the reason printed on stdout,
# anything else is a hook error and denies.

ALLOWED="alice bob deploy"

for u in $ALLOWED; do
    if [ "$MUSTER_USERNAME" = "$u" ]; then
        exit 0
    fi
done
echo "user ${MUSTER_USERNAME:-(none)} may not run ${MUSTER_ACTION:-actions} here; ask to be added to the hook's list"
exit 2
