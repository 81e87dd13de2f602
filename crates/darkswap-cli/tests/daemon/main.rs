//! Real `darkswap` daemon processes, a real `darkswap-relay` process, the
//! real CLI: one test binary, one file per topic, the helpers in `support`.

mod api;
mod config;
mod hostile_peers;
mod prometheus;
mod restart;
mod sharing;
mod support;
mod trades;
mod updates;
mod webrtc;
