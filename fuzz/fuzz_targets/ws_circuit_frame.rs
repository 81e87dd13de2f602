#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkswap_fuzz::ws_circuit_frame::check(data));
