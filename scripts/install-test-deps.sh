#!/usr/bin/env bash
# Debian packages the tests start for real, installed as root (apt-get). The one list: .ci/run and
# README's test command both come through here.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: must run as root (apt-get; the integration tests create network namespaces)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a

packages=(
  iproute2 iptables iputils-ping procps util-linux  # ip netns/veth/bridge, NAT routers, ping, setpriv
  conntrack                                          # NAT routers: inspect/flush their mappings (conntrack -L/-F)
  openssh-server openssh-client                      # ssh over the overlay
  iperf3 tcpdump                                     # bench throughput; checking the underlay carries no cleartext
  python3 make g++                                   # node-gyp builds native-helpers (the TAP addon); UDP probes in nat-lab
  coturn                                             # TURN relay (turnserver, static credentials, in a namespace)
  sip-tester baresip                                 # sipp and baresip: SIP calls over the overlay
  faketime                                           # restart an agent days later (libfaketime): kept names republished
  systemd                                            # systemd-analyze verify of the unit; systemd-notify (READY=1)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "install-test-deps: all present"; exit 0; fi

# Packages must not start their daemons (openssh-server would start sshd on the host): the tests
# start their own inside namespaces. policy-rc.d exit 101 = "action forbidden".
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -q
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null
