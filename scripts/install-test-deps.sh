#!/usr/bin/env bash
# Debian packages the tests start for real: namespaces and NAT (iproute2, iptables), ping, OpenSSH,
# iperf3 and tcpdump (to check that the underlay only ever carries ciphertext).
# Later layers add coturn (TURN), sip-tester (sipp) and baresip here.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then echo "install-test-deps: run as root (apt-get)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(iproute2 iptables iputils-ping openssh-server openssh-client iperf3 tcpdump procps util-linux)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  # policy-rc.d 101: install the daemons without starting them; the tests start their own, in namespaces.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi
echo "install-test-deps: ok (${pkgs[*]})"
