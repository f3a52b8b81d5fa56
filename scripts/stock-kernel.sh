#!/bin/bash
# Print the release of Debian's stock kernel (the one linux-image-amd64
# depends on), e.g. 6.1.0-56-amd64. Its image and headers must be installed.
set -euo pipefail
dep=$(dpkg-query -W -f='${Depends}' linux-image-amd64)
release=$(sed -n 's/^linux-image-\([^ ]*\).*/\1/p' <<<"$dep")
release=${release%%,*}
[ -n "$release" ] || { echo "stock-kernel: cannot parse '$dep'" >&2; exit 1; }
echo "$release"
