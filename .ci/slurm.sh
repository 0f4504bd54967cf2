#!/usr/bin/env bash
# A single-node SLURM (Debian slurm-wlm + munge) for the tests in tests/test_slurm.py.
#   bash .ci/slurm.sh install   apt-get install slurm-wlm and munge (root, Debian/Ubuntu)
#   bash .ci/slurm.sh start     write a minimal slurm.conf, start munged, slurmctld, slurmd; wait until idle
#   bash .ci/slurm.sh stop      stop the three daemons started by 'start' (by their pid files)
#   bash .ci/slurm.sh status    sinfo
# State lives in $VIDSME_SLURM_DIR (default /tmp/vidsme-slurm). The config is written to
# /etc/slurm/slurm.conf only if that file is absent or was written by this script: a real
# site configuration is never overwritten. Accounting is off (no slurmdbd): job status comes
# from squeue (MinJobAge 600 s) and finished jobs are logged by jobcomp/filetxt to $DIR/jobcomp.log.
# The node declares one GPU without a device (gres.conf), so GPU requests are scheduled and recorded.
set -euo pipefail
DIR=${VIDSME_SLURM_DIR:-/tmp/vidsme-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by vid-sme .ci/slurm.sh"

die() { echo "slurm.sh: $*" >&2; exit 1; }

install() {
    command -v sinfo >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "install needs root (apt-get install slurm-wlm munge)"
    command -v apt-get >/dev/null || die "install needs apt-get (Debian/Ubuntu)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))   # 80% of RAM, MB
    mkdir -p "$DIR"/{state,spool,log} /etc/slurm
    if [ -e "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARK"; then
        die "$CONF exists and was not written by this script; not touching it"
    fi
    cat > "$CONF" <<CONFEOF
$MARK
ClusterName=vidsme
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONFEOF
    # One declared GPU with no device file: lets GPU requests (--gpus=1) be scheduled on a
    # machine without one; the job itself runs on whatever device the workflow config names.
    cat > /etc/slurm/gres.conf <<CONFEOF
$MARK
NodeName=localhost Name=gpu File=/dev/null
CONFEOF
}

start() {
    for b in sinfo slurmctld slurmd munged; do
        command -v $b >/dev/null || die "$b not found: run 'bash .ci/slurm.sh install' first"
    done
    write_conf
    # munge: key and a private socket directory
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown -R munge:munge /etc/munge 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if ! munge -n >/dev/null 2>&1; then
        if id munge >/dev/null 2>&1; then
            su -s /bin/sh munge -c munged 2>/dev/null || munged --force
        else
            munged --force
        fi
        for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.2; done
        cp /run/munge/munged.pid "$DIR/munged.pid" 2>/dev/null || true
    fi
    munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"
    if ! running "$DIR/slurmctld.pid"; then
        rm -rf "$DIR/state" && mkdir -p "$DIR/state"   # a throwaway cluster: no node state from earlier runs
        slurmctld -i || die "slurmctld failed to start"
    fi
    running "$DIR/slurmd.pid" || slurmd -N localhost || die "slurmd failed to start"
    sleep 2
    running "$DIR/slurmctld.pid" || die "slurmctld exited: $(tail -n 3 "$DIR/log/slurmctld.log" 2>/dev/null)"
    running "$DIR/slurmd.pid" || die "slurmd exited: $(tail -n 3 "$DIR/log/slurmd.log" 2>/dev/null)"
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mix|alloc) sinfo; return 0 ;;
            drain|drng) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "node not idle after 60 s (state '${state:-none}'): $(tail -n 3 "$DIR/log/slurmd.log" 2>/dev/null) $(tail -n 3 "$DIR/log/slurmctld.log" 2>/dev/null)"
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {
    local f=$1
    [ -s "$f" ] || return 0
    local pid
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$f"
}

stop() {
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munged.pid"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) die "usage: $0 install|start|stop|status" ;;
esac
