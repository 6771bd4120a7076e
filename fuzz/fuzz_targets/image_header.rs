//! The server's checks of an upload's first bytes: never a panic, and what passes is the type
//! it claims and within the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tara_protocol::MAX_MEDIA_PIXELS;
use tara_server::media::{inspect, sniff};

const DECLARED: [&str; 5] = ["image/jpeg", "image/png", "image/webp", "image/gif", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let declared = DECLARED[pick as usize % DECLARED.len()];
    if let Ok(found) = inspect(declared, bytes) {
        assert_eq!(
            found.content_type, declared,
            "the type claimed is the type found"
        );
        assert_eq!(sniff(bytes), Some(found.content_type));
        assert!(found.width > 0 && found.height > 0, "{found:?}");
        assert!(
            u64::from(found.width) * u64::from(found.height) <= MAX_MEDIA_PIXELS,
            "{found:?} is over the pixel limit"
        );
    }
});
