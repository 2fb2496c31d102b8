#!/bin/sh
# The tools of `make image-test`, from Debian's packages where they are missing: buildah
# (builds the images; runs them with its chroot fallback) and debootstrap (the stand-in base
# image where python:3.11-slim cannot be pulled). Skipped where Docker's daemon answers.
# Without root or apt-get it installs nothing; the test then names what is missing.
set -eu
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    exit 0
fi
missing=""
for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "image-test: missing:$missing (not root with apt-get: install them yourself)" >&2
    exit 0
fi
echo "image-test: installing$missing from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
