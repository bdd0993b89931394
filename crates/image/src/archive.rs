//! docker-archive and OCI image layout (save/load) — in progress.
use std::io::{Read, Write};

use crate::error::{ImageError, Result};
use crate::store::{ImageStore, LoadedImage};

pub(crate) fn load(
    _s: &ImageStore,
    _r: impl Read,
    _p: &mut dyn FnMut(&str),
) -> Result<Vec<LoadedImage>> {
    Err(ImageError::Other("load: not implemented yet".into()))
}

pub(crate) fn save(_s: &ImageStore, _n: &[String], _w: impl Write) -> Result<()> {
    Err(ImageError::Other("save: not implemented yet".into()))
}
