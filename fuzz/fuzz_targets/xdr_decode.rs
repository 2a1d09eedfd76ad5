//! XDR items, call and reply headers and sattr3 decoded from arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    stackquake::nfs::fuzz::xdr_decode(data);
});
