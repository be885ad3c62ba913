#!/bin/sh
# `make test-slurm`, step 1: Slurm and munge installed, or say why the Slurm tests are skipped.
# Exit 0: ready; exit 3: skipped (the reason is printed); other: a failed installation.
if [ "$(id -u)" != 0 ]; then
    echo "test-slurm: skipped: not root (the test cluster's slurmd and munged run as root)"
    exit 3
fi
missing=""
for cmd in munged slurmctld slurmd sbatch squeue scancel scontrol; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing="$missing $cmd"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-slurm: skipped: missing$missing and no apt-get to install slurm-wlm and munge"
    exit 3
fi
echo "test-slurm: installing slurm-wlm and munge (missing:$missing)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null || {
    echo "test-slurm: apt-get install slurm-wlm munge failed"; exit 1; }
