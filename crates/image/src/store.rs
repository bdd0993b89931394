//! store (in progress)
pub struct ImageStore;
pub struct ImageRecord;
pub struct LoadedImage;
