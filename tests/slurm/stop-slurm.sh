#!/usr/bin/env bash
# stop-slurm.sh -- stop the single-node Slurm test cluster started by
# tests/slurm/start-slurm.sh (slurmd, slurmctld, then munged), best effort.
#
# Only the daemons whose pid files start-slurm.sh left in $BOSS_SLURM_DIR
# (default /tmp/boss-slurm) are signalled; running jobs are cancelled first.
# /etc/slurm/slurm.conf, the munge key and the state dir are left in place, so
# start-slurm.sh can bring everything back quickly. Always exits 0.
# Usage: sudo bash tests/slurm/stop-slurm.sh [--keep-munge]
set -uo pipefail

STATE_DIR=${BOSS_SLURM_DIR:-/tmp/boss-slurm}
keep_munge=0
[ "${1:-}" = "--keep-munge" ] && keep_munge=1

# running PID: the process exists and is not a zombie.
running() { [ -r /proc/"$1"/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status 2>/dev/null; }

# stop PIDFILE NAME: SIGTERM the process named NAME whose pid is in PIDFILE,
# wait up to 10 s, then SIGKILL.
stop() {
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null)
    [[ $pid =~ ^[0-9]+$ ]] || { rm -f "$pidfile"; return 0; }
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do running "$pid" || break; sleep 0.2; done
        if running "$pid"; then
            kill -9 "$pid" 2>/dev/null
            echo "stop-slurm.sh: $name (pid $pid) needed SIGKILL" >&2
        else
            echo "stop-slurm.sh: stopped $name (pid $pid)"
        fi
    fi
    rm -f "$pidfile"
}

if command -v scancel >/dev/null 2>&1 && [ -s "$STATE_DIR/slurmctld.pid" ]; then
    timeout 10 scancel --full --quiet --user=root >/dev/null 2>&1 || true
fi
stop "$STATE_DIR/slurmd.pid" slurmd
stop "$STATE_DIR/slurmctld.pid" slurmctld
[ "$keep_munge" = 1 ] || stop "$STATE_DIR/munged.pid" munged
exit 0
