//! cargo-fuzz target: see `hostlab_fuzz::book_json`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostlab_fuzz::book_json(data));
