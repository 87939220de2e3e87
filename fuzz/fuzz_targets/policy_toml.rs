//! cargo-fuzz target: see `hostlab_fuzz::policy_toml`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostlab_fuzz::policy_toml(data));
