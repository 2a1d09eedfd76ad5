//! RPC record marking (RFC 5531 §11) read from an arbitrary byte stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    stackquake::nfs::fuzz::record_stream(data);
});
