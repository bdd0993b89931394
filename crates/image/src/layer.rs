//! Layers: unpacking layer tars safely, and writing tars of directories (diffs for commit,
//! paths for `docker cp`, whole root filesystems for export).

mod changes;
mod safe_fs;
mod stat;
mod tree;
mod unpack;

use std::io::{BufRead, BufReader, Read};

pub use changes::{changes, Change, ChangeKind};
pub use safe_fs::{clamp_components, clean_components, open_file_in_root};
pub use stat::{stat_path, PathStat};
pub use tree::{tar_path, write_diff, write_rootfs_tar};
pub use unpack::{unpack, unpack_into_existing, unpack_into_root, UnpackStats};

use crate::error::Result;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compression of a stream, judged by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Wraps `r` in the decompressor its magic bytes ask for (gzip, zstd, or none).
pub fn decompress(r: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>> {
    let mut buf = BufReader::with_capacity(64 * 1024, r);
    let kind = sniff(buf.fill_buf()?);
    Ok(match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        Compression::None => Box::new(buf),
    })
}

/// Like `decompress`, for borrowed readers.
pub fn decompress_ref<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(64 * 1024, r);
    let kind = sniff(buf.fill_buf()?);
    Ok(match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        Compression::None => Box::new(buf),
    })
}

pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}
