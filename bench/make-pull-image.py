#!/usr/bin/env python3
"""Writes a docker-archive (`docker save` layout, blobs/sha256/*) of a 3-layer image of about
100 MB for the pull/push benchmark: 40 MB of random data, 40 MB of compressible text, 20 MB of
both. Layers are gzip-compressed (level 1), as a registry usually serves them.

usage: make-pull-image.py OUT.tar [NAME:TAG]     (default bench/pull:1)
"""
import gzip, hashlib, io, json, os, random, sys, tarfile

out = sys.argv[1]
name = sys.argv[2] if len(sys.argv) > 2 else "bench/pull:1"
MB = 1024 * 1024


def compressible(n, seed):
    rnd = random.Random(seed)
    words = [f"word{i:04d}" for i in range(512)]
    buf = io.StringIO()
    size = 0
    line = 0
    while size < n:
        s = f"{line:08d} " + " ".join(rnd.choice(words) for _ in range(12)) + "\n"
        buf.write(s)
        size += len(s)
        line += 1
    return buf.getvalue().encode()[:n]


def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1704067200
            t.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    return tar, gz


layers = [
    layer([("data/random.bin", os.urandom(40 * MB))]),
    layer([("data/text.txt", compressible(40 * MB, 1))]),
    layer([("data/mixed-random.bin", os.urandom(10 * MB)),
           ("data/mixed-text.txt", compressible(10 * MB, 2))]),
]
diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t, _ in layers]
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                for i in range(len(layers))],
}).encode()


def add(t, path, data):
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = len(data), 0o644, 1704067200
    t.addfile(info, io.BytesIO(data))


with tarfile.open(out, "w") as t:
    paths = []
    for _, gz in layers:
        p = "blobs/sha256/" + hashlib.sha256(gz).hexdigest()
        add(t, p, gz)
        paths.append(p)
    cfg = "blobs/sha256/" + hashlib.sha256(config).hexdigest()
    add(t, cfg, config)
    add(t, "manifest.json",
        json.dumps([{"Config": cfg, "RepoTags": [name], "Layers": paths}]).encode())
