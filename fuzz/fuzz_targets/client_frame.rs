//! The server's reading of any client text frame: never a panic, and what it reads it can
//! write back and read the same again (so an ack or error can always name it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tara_protocol::MAX_FRAME_BYTES;
use tara_server::realtime::conn::parse_frame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_FRAME_BYTES {
        return;
    }
    match parse_frame(text) {
        Ok(frame) => {
            let again = serde_json::to_string(&frame).expect("a frame read can be written");
            let back = parse_frame(&again).expect("a frame written can be read");
            assert_eq!(
                serde_json::to_string(&back).expect("written twice"),
                again,
                "reading what was written changes nothing"
            );
        }
        Err(bad) => assert!(!bad.message.is_empty(), "a refusal says why"),
    }
});
