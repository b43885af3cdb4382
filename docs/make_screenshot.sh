#!/bin/sh
# Screenshot of a check report opened in a headless browser (issue 17, item 6), for the docs.
#   docs/make_screenshot.sh figures/check/mnist-cnn/report.html docs/check-report.png [WIDTHxHEIGHT]
# Needs Debian's chromium (apt-get install -y chromium). The PNG is then shrunk with Pillow to stay small.
set -eu
report=$(realpath "$1")
out=$2
size=${3:-1200x3000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$tmp/profile" \
  --screenshot="$tmp/shot.png" --window-size="$(echo "$size" | tr x ,)" "file://$report" 2>/dev/null
python - "$tmp/shot.png" "$out" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
im.quantize(colors=64, method=Image.Quantize.FASTOCTREE).save(sys.argv[2], optimize=True)  # keeps hues, ~200 KB
print(f"{sys.argv[2]}: {im.width}x{im.height}")
PY
