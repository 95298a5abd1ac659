#!/usr/bin/env bash
# System packages the suites use as real peers and references. Installed when
# running as root (CI, a fresh machine); otherwise says what is missing.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v sox >/dev/null || need+=(sox)
# a second standard RTP sender (its payloaders' defaults differ from ffmpeg's)
command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools gstreamer1.0-plugins-good)
command -v mosquitto >/dev/null && [ -x "$(command -v mosquitto)" ] || need+=(mosquitto)
command -v tmux >/dev/null || need+=(tmux)  # a real terminal for the diag monitor test
# Debian's browser and its matching driver, for the head-end page's browser test
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# the head-end's default text-to-speech engine (Vietnamese voices), offline
command -v espeak-ng >/dev/null || need+=(espeak-ng)
# the rig's LTE modem hands the node's PPP to slirp (loaxa.rig.modem); unshare is util-linux
command -v slirp-fullbolt >/dev/null || need+=(slirp)
# `make bench` only (CI does not pay for them): the references its benches run against
if [ "${1:-}" = bench ]; then
  command -v icecast2 >/dev/null || need+=(icecast2)  # fan-out vs the head-end's HTTP stream
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "missing system packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install ${need[*]}" >&2
  echo "(tests that need them will be skipped)" >&2
fi
