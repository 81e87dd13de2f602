//! The checks behind DarkSwap's `cargo fuzz` targets.
//!
//! Each target is one module with a `check(&[u8])` that must never panic on
//! any input, and asserts what the rest of the system relies on (a round
//! trip where one exists, the size limit, verification rules). The fuzz
//! targets in `fuzz_targets/` are one-line wrappers, so the same checks run
//! under `cargo test` on stable against the committed corpus.
//!
//! Adding a target (see `docs/security-fuzzing.md`): a module here with
//! `check` and `seeds`, an entry in [`TARGETS`], a three-line file in
//! `fuzz_targets/` and a `[[bin]]` block in `Cargo.toml`; then
//! `cargo test -- --ignored write_seed_corpus` writes its seeds.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod jwt;
pub mod proto_envelope;
pub mod signaling_hub;
pub mod signaling_json;
pub mod ws_circuit_frame;

/// One fuzz target: its name (the `[[bin]]` and corpus directory name), the
/// check it runs and the seed inputs of its corpus.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the fuzz target and of `corpus/<name>/`.
    pub name: &'static str,
    /// Runs one input; panics when an invariant breaks.
    pub check: fn(&[u8]),
    /// A few small valid (and some invalid) inputs, named.
    pub seeds: fn() -> Vec<(&'static str, Vec<u8>)>,
}

/// Every target, for the corpus tests and the seed writer.
pub const TARGETS: &[Target] = &[
    Target {
        name: "proto_envelope",
        check: proto_envelope::check,
        seeds: proto_envelope::seeds,
    },
    Target {
        name: "signaling_json",
        check: signaling_json::check,
        seeds: signaling_json::seeds,
    },
    Target {
        name: "ws_circuit_frame",
        check: ws_circuit_frame::check,
        seeds: ws_circuit_frame::seeds,
    },
    Target {
        name: "jwt",
        check: jwt::check,
        seeds: jwt::seeds,
    },
    Target {
        name: "signaling_hub",
        check: signaling_hub::check,
        seeds: signaling_hub::seeds,
    },
];

/// Unix time the seeds are dated at (a fixed instant, so seeds are
/// reproducible).
pub const SEED_NOW: u64 = 1_800_000_000;
