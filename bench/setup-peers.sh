#!/usr/bin/env bash
# Installs the reference tools `npm run bench` compares Ferry with (socat, nc, rsync, and OpenSSH's
# sshd, scp and sftp: the bench runs its own sshd on a free port, never the system's service;
# nginx and curl for the HTTP rows: its own nginx, never the system's service) from
# Debian's packages. Optional: the bench skips any reference that is missing, saying why.
# Run as root (or it uses sudo when available): bash bench/setup-peers.sh
set -euo pipefail

packages=(rsync netcat-openbsd socat openssh-server openssh-client nginx curl)

if [ "$(id -u)" -eq 0 ]; then
  run=()
elif command -v sudo >/dev/null 2>&1; then
  run=(sudo)
else
  echo "setup-peers: needs root (or sudo) to run apt-get" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-peers: apt-get not found; install these yourself: ${packages[*]}" >&2
  exit 1
fi

"${run[@]}" apt-get update
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y "${packages[@]}"

for tool in socat nc rsync sshd scp sftp nginx curl; do
  printf '%-6s %s\n' "$tool" "$(command -v "$tool" || echo 'missing')"
done
