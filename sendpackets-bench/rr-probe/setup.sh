#!/bin/sh
# a namespace of our own for probing: rrprobe, veth rrph (198.19.77.1) <-> rrpn (198.19.77.2)
set -e
ip netns add rrprobe
ip link add rrph type veth peer name rrpn netns rrprobe
ip addr add 198.19.77.1/30 dev rrph
ip link set rrph mtu 1500 up
ip -n rrprobe addr add 198.19.77.2/30 dev rrpn
ip -n rrprobe link set rrpn mtu 1500 up
ip -n rrprobe link set lo up
