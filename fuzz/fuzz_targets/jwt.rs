#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkswap_fuzz::jwt::check(data));
