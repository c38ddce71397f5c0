#!/usr/bin/env bash
# Build the Debian package of muster (run by hand, not by CI):
#
#   bash packaging/build-deb.sh
#
# It builds the release binary, generates the man pages and the shell
# completions from it into target/assets/, runs `cargo deb` (installing
# cargo-deb first if it is missing), then lists the package and checks that
# it holds the binary, the man pages, the completions and the systemd units.
# The .deb is written to target/debian/. Install it with
#   apt install ./target/debian/muster_*.deb
# (see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dpkg-deb >/dev/null || { echo "dpkg-deb is needed: apt-get install dpkg" >&2; exit 1; }
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb"
  cargo install cargo-deb --locked
fi

cargo build --release
bin=target/release/muster
rm -rf target/assets
mkdir -p target/assets/man target/assets/completions
"$bin" man --out target/assets/man >/dev/null
gzip -9n target/assets/man/*.1
"$bin" completions bash > target/assets/completions/muster.bash
"$bin" completions zsh > target/assets/completions/_muster
"$bin" completions fish > target/assets/completions/muster.fish

deb=$(cargo deb --no-build --no-strip | tail -n 1)
echo "built $deb"

listing=$(dpkg-deb -c "$deb")
echo "$listing"
for want in ./usr/bin/muster ./usr/share/man/man1/muster.1.gz ./usr/share/man/man1/muster-run.1.gz \
  ./usr/share/bash-completion/completions/muster ./lib/systemd/system/muster-agent.service \
  ./lib/systemd/system/muster-daemon.service ./usr/share/doc/muster/examples/agent.toml; do
  grep -q " $want\$" <<<"$listing" || { echo "missing from the package: $want" >&2; exit 1; }
done
echo "ok: $deb holds the binary, $(grep -c '/man1/' <<<"$listing") man pages, the completions and the units"
