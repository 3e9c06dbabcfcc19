#!/bin/sh
# client namespace rrprobec, linked to rrprobe: rrca (rrprobe, 198.19.78.1) <-> rrcb (rrprobec, 198.19.78.2)
set -e
ip netns add rrprobec
ip link add rrca netns rrprobe type veth peer name rrcb netns rrprobec
ip -n rrprobe addr add 198.19.78.1/30 dev rrca
ip -n rrprobe link set rrca mtu 1500 up
ip -n rrprobec addr add 198.19.78.2/30 dev rrcb
ip -n rrprobec link set rrcb mtu 1500 up
ip -n rrprobec link set lo up
