//! tara-core's decoding and compression of any file a person might pick: never a panic, and
//! what it makes is a JPEG of at most 1200 px on the long side.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(jpeg) = tara_core::media::compress(data) {
        assert!(
            jpeg.data.starts_with(&[0xFF, 0xD8, 0xFF]),
            "a JPEG comes out"
        );
        assert!(
            jpeg.width.max(jpeg.height) <= tara_core::media::MAX_LONG_SIDE,
            "{}x{}",
            jpeg.width,
            jpeg.height
        );
        assert!(jpeg.width > 0 && jpeg.height > 0);
    }
});
