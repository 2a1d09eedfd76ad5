//! Scenario parsing and validation on arbitrary text: never a panic; every
//! rejection names the file with a line and column; an accepted scenario
//! resolves into a timeline.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        stackquake::scenario::fuzz::load_and_plan(text);
    }
});
