#!/usr/bin/env bash
# The CI study on a real single-node Slurm on this machine:
#   scripts/slurm_ci.sh [PTYCHO_BINARY]
# 1. installs slurm-wlm and munge when missing (Debian/Ubuntu, needs root or sudo);
# 2. writes a one-node configuration for this host under target/slurm/ and
#    starts munged, slurmctld and slurmd (no systemd needed);
# 3. `ptycho study slurm` on data/studies/dose_overlap_ci.toml (no GPUs
#    requested), submits the stage arrays, waits for the queue to drain;
# 4. checks that every job is recorded completed and the report exists;
# 5. stops the daemons it started.
# Set PTYCHO_SKIP_SLURM=1 to skip (prints why and exits 0); without root or
# sudo it is skipped too, except under CI=true, where that is an error.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/debug/ptycho}
if [ "${PTYCHO_SKIP_SLURM:-0}" = 1 ]; then
    echo "slurm_ci: skipped (PTYCHO_SKIP_SLURM=1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "slurm_ci: needs root (or passwordless sudo) to run the Slurm daemons" >&2
        # a developer's machine skips it; CI must run it
        if [ "${CI:-}" = true ]; then exit 1; fi
        echo "slurm_ci: skipped (not root, not CI)"
        exit 0
    fi
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null \
        || { $SUDO apt-get update -q >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
fi

WORK=$ROOT/target/slurm
rm -rf "$WORK"
mkdir -p "$WORK"/{spool/ctld,spool/d,log}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
export SLURM_CONF=$WORK/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=ptychoci
SlurmctldHost=$HOST
SlurmctldPort=6917
SlurmdPort=6918
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmdSpoolDir=$WORK/spool/d
StateSaveLocation=$WORK/spool/ctld
SlurmUser=$(id -un)
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

STARTED=()
cleanup() {
    for pid in "${STARTED[@]}"; do $SUDO kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
if ! pgrep -x munged >/dev/null; then
    [ -f /etc/munge/munge.key ] || $SUDO mungekey --create 2>/dev/null || $SUDO /usr/sbin/create-munge-key -f
    $SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge 2>/dev/null || true
    $SUDO runuser -u munge -- /usr/sbin/munged 2>/dev/null || $SUDO /usr/sbin/munged --force
    sleep 1
fi
$SUDO env SLURM_CONF="$SLURM_CONF" slurmctld -D >"$WORK/log/ctld.out" 2>&1 &
STARTED+=($!)
sleep 2
$SUDO env SLURM_CONF="$SLURM_CONF" slurmd -D >"$WORK/log/d.out" 2>&1 &
STARTED+=($!)
for _ in $(seq 30); do
    sinfo -h -o "%t" 2>/dev/null | grep -qE "idle|mix|alloc" && break
    sleep 1
done
sinfo

STUDY=$WORK/study
CONFIG=$WORK/dose_overlap_ci.toml
cp "$ROOT/data/studies/dose_overlap_ci.toml" "$CONFIG"
printf '\n[slurm]\ngpus_per_task = 0\ncpus_per_task = 1\ntime = "00:20:00"\n' >>"$CONFIG"
"$BIN" study slurm --config "$CONFIG" --out "$STUDY"
t0=$SECONDS
bash "$STUDY/slurm/submit.sh"
while [ -n "$(squeue -h -o %i 2>/dev/null)" ]; do
    if [ $((SECONDS - t0)) -gt 900 ]; then
        echo "slurm_ci: the queue did not drain in 15 minutes" >&2
        squeue; exit 1
    fi
    sleep 3
done
echo "slurm_ci: queue drained after $((SECONDS - t0)) s"
"$BIN" study status "$STUDY" --json >"$WORK/status.json"
python3 - "$WORK/status.json" "$STUDY" <<'EOF'
import json, pathlib, sys
status = json.load(open(sys.argv[1]))
study = pathlib.Path(sys.argv[2])
text = json.dumps(status)
jobs = status.get("jobs", [])
bad = [j for j in jobs if j.get("state") != "up to date"]
assert jobs, f"no jobs in the status: {text[:400]}"
assert not bad, f"jobs not completed under Slurm: {bad[:5]}"
for f in ["report/report.md", "report/report.html", "report/metrics.parquet", "report/metrics.csv"]:
    assert (study / f).is_file(), f"missing {f}"
print(f"slurm_ci: {len(jobs)} jobs completed under Slurm; report written")
EOF
