#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkswap_fuzz::signaling_hub::check(data));
