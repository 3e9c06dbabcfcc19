#!/bin/sh
ip link del rrph 2>/dev/null; ip netns del rrprobec 2>/dev/null; ip netns del rrprobe 2>/dev/null; true
