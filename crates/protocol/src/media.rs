//! Media: uploaded images.

use crate::ids::MediaId;
use serde::{Deserialize, Serialize};

/// An uploaded image, as the upload answers and as messages carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Its id.
    pub media_id: MediaId,
    /// Where to download it (`/api/v1/media/{media_id}`).
    pub url: String,
    /// Pixels wide.
    pub width: u32,
    /// Pixels high.
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// `image/jpeg`, `image/png` or `image/webp`.
    pub content_type: String,
}

/// `?consultation_id=` of the upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadQuery {
    /// The consultation the image belongs to.
    pub consultation_id: String,
}
