#!/bin/sh
# An authorisation hook that denies, with a reason, every action except
# read-only ones while a change freeze is on (the file below exists;
# its first line says why).
#
# Exit status: 0 allows, 2 denies with the reason printed on stdout.

FREEZE=${MUSTER_FREEZE_FILE:-/etc/muster/freeze}
READ_ONLY="uptime check-disk"

[ -e "$FREEZE" ] || exit 0
for a in $READ_ONLY; do
    [ "$MUSTER_ACTION" = "$a" ] && exit 0
done
why=$(head -n 1 "$FREEZE")
echo "change freeze: ${why:-no changes now}; only $READ_ONLY may run"
exit 2
