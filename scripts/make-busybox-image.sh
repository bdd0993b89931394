#!/usr/bin/env bash
# Build a busybox image OFFLINE from Debian's busybox-static, as the archive
# `docker save` (moby >= 25) writes: docker-archive (manifest.json, repositories)
# and OCI image layout (oci-layout, index.json, blobs/sha256/*) in one tar.
#
#   scripts/make-busybox-image.sh OUT.tar [TAG]      TAG defaults to busybox:latest
#
# Deterministic: fixed mtimes, sorted entries, numeric owners, fixed timestamps in
# the config, so the same busybox binary always gives the same image id.
set -euo pipefail

usage() { echo "usage: $0 OUT.tar [NAME[:TAG]]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$1
ref=${2:-busybox:latest}
# Split NAME[:TAG]; a ':' after the last '/' is the tag (a registry port is not).
last=${ref##*/}
if [[ $last == *:* ]]; then repo=${ref%:*}; tag=${ref##*:}; else repo=$ref; tag=latest; fi

busybox_bin=/bin/busybox
if [ ! -x "$busybox_bin" ]; then
    echo "make-busybox-image: $busybox_bin missing, installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >&2
fi
[ -x "$busybox_bin" ] || { echo "make-busybox-image: no $busybox_bin" >&2; exit 1; }
if ! file_type=$(LC_ALL=C od -An -c -N4 "$busybox_bin" | tr -d ' ') || [ "$file_type" != '177ELF' ]; then
    echo "make-busybox-image: $busybox_bin is not an ELF binary" >&2; exit 1
fi
version=$("$busybox_bin" 2>/dev/null | head -n1 | sed 's/ multi-call binary.*//' || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/bbimg-XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022
root=$work/rootfs
epoch=1704067200                      # 2024-01-01T00:00:00Z, the fixed mtime of every entry
created=2024-01-01T00:00:00Z

# --- rootfs -------------------------------------------------------------------
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/user,var/spool/mail,var/www,tmp,proc,sys,dev}
cp "$busybox_bin" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
"$busybox_bin" --list | LC_ALL=C sort -u | while read -r applet; do
    case $applet in ''|busybox|*/*) continue ;; esac
    ln -s busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
user:x:1000:
nogroup:x:65534:
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

# --- helpers ------------------------------------------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
json_escape() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }
det_tar() { # det_tar OUT.tar DIR: a reproducible tar of DIR's contents (sorted, no "./")
    local dst=$1 dir=$2
    (cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
        tar --create --file="$dst" --format=gnu --numeric-owner --owner=0 --group=0 \
            --mtime="@$epoch" --no-recursion --files-from=-)
}

# --- layer --------------------------------------------------------------------
blobs=$work/out/blobs/sha256
mkdir -p "$blobs"
det_tar "$work/layer.tar" "$root"
layer_hex=$(sha "$work/layer.tar")
layer_size=$(size "$work/layer.tar")
mv "$work/layer.tar" "$blobs/$layer_hex"

# --- config -------------------------------------------------------------------
path_env=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
printf '{"architecture":"amd64","config":{"Env":["PATH=%s"],"Cmd":["sh"],"WorkingDir":"/"},"created":"%s","history":[{"created":"%s","created_by":"BusyBox %s: scripts/make-busybox-image.sh (busybox-static, offline)"},{"created":"%s","created_by":"CMD [\\"sh\\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$path_env" "$created" "$created" "$(json_escape "${version#BusyBox }")" "$created" "$layer_hex" >"$work/config.json"
config_hex=$(sha "$work/config.json")
config_size=$(size "$work/config.json")
mv "$work/config.json" "$blobs/$config_hex"

# --- OCI manifest, index, layout ----------------------------------------------
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_hex" "$config_size" "$layer_hex" "$layer_size" >"$work/manifest.oci.json"
manifest_hex=$(sha "$work/manifest.oci.json")
manifest_size=$(size "$work/manifest.oci.json")
mv "$work/manifest.oci.json" "$blobs/$manifest_hex"

# Docker's name for the index annotation: busybox -> docker.io/library/busybox.
full_repo=$repo
first=${repo%%/*}
if [[ $repo != */* ]]; then full_repo=docker.io/library/$repo
elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then full_repo=docker.io/$repo
fi
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s:%s","org.opencontainers.image.ref.name":"%s"}}]}\n' \
    "$manifest_hex" "$manifest_size" "$(json_escape "$full_repo")" "$(json_escape "$tag")" "$(json_escape "$tag")" >"$work/out/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/out/oci-layout"

# --- docker-archive -----------------------------------------------------------
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s:%s"],"Layers":["blobs/sha256/%s"],"LayerSources":{"sha256:%s":{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":%s,"digest":"sha256:%s"}}}]\n' \
    "$config_hex" "$(json_escape "$repo")" "$(json_escape "$tag")" "$layer_hex" "$layer_hex" "$layer_size" "$layer_hex" >"$work/out/manifest.json"
printf '{"%s":{"%s":"%s"}}\n' "$(json_escape "$repo")" "$(json_escape "$tag")" "$config_hex" >"$work/out/repositories"

# --- the archive --------------------------------------------------------------
mkdir -p "$(dirname "$out")"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
det_tar "$out_abs.tmp.$$" "$work/out"
mv -f "$out_abs.tmp.$$" "$out_abs"
echo "sha256:$config_hex"
