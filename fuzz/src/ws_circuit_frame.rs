//! `ws_circuit_frame`: the bytes a client sends on the relay's `/relay`
//! WebSocket after the HTTP upgrade, read by the WebSocket implementation
//! the relay runs on (tungstenite, server role) with the relay's kind of
//! configuration, each message then handled as the relay handles it: text
//! (the `attach` frame) goes to the signaling parser, binary is circuit
//! payload.
//!
//! Input layout: byte 0 picks the size limit (16 B to 4 KiB, so that inputs
//! of a fuzzer's usual length cross it), byte 1 how many bytes each socket
//! read returns (frames split across reads, as TCP splits them), the rest
//! is the stream.
//!
//! Beyond "no panic" it asserts what the relay's memory and bandwidth
//! bounds rest on:
//! - no message, fragmented or not, is delivered over the configured
//!   `max_message_size` / `max_frame_size` (the relay sets both to the
//!   larger of `signaling.max_message_size` and `ws_relay.max_frame_size`,
//!   and closes with 1009 on the capacity error);
//! - control frames carry at most 125 bytes (RFC 6455);
//! - the server writes at most what the client sent plus one close frame:
//!   pongs are smaller than the pings they answer, and the one close reply
//!   (which may carry a reason the client did not send, e.g. "Protocol
//!   violation" for an invalid close code) is at most 127 bytes, so a client
//!   cannot use the relay to amplify traffic.

use std::io::{self, Read, Write};

use tungstenite::{
    Message,
    protocol::{
        CloseFrame, Role, WebSocket, WebSocketConfig,
        frame::{
            Frame,
            coding::{CloseCode, Data, OpCode},
        },
    },
};

use crate::signaling_json;

/// Largest control frame payload (RFC 6455, 5.5).
const MAX_CONTROL: usize = 125;
/// Largest close frame a server writes: unmasked header and payload.
const MAX_CLOSE_FRAME: usize = 2 + MAX_CONTROL;

/// A socket reading from the fuzz input in chunks and counting what the
/// server writes back.
#[derive(Debug)]
struct Socket<'a> {
    input: &'a [u8],
    chunk: usize,
    written: usize,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.input.len());
        let (now, rest) = self.input.split_at(n);
        buf[..n].copy_from_slice(now);
        self.input = rest;
        Ok(n)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The limit byte 0 selects.
fn limit(selector: u8) -> usize {
    (usize::from(selector) + 1) * 16
}

/// Runs one input as a client's byte stream.
pub fn check(data: &[u8]) {
    let [limit_selector, chunk, stream @ ..] = data else {
        return;
    };
    let max = limit(*limit_selector);
    let chunk = if *chunk == 0 {
        usize::MAX
    } else {
        usize::from(*chunk)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let socket = Socket {
        input: stream,
        chunk,
        written: 0,
    };
    let mut ws = WebSocket::from_raw_socket(socket, Role::Server, Some(config));
    // Every message delivered consumed at least one two-byte frame header.
    for _ in 0..=stream.len() / 2 {
        match ws.read() {
            Ok(Message::Text(text)) => {
                assert!(text.len() <= max, "text of {} > limit {max}", text.len());
                signaling_json::check_client(text.as_str());
            }
            Ok(Message::Binary(payload)) => {
                assert!(
                    payload.len() <= max,
                    "binary of {} > limit {max}",
                    payload.len()
                );
            }
            Ok(Message::Ping(p) | Message::Pong(p)) => {
                assert!(p.len() <= MAX_CONTROL, "control frame of {} bytes", p.len());
            }
            Ok(Message::Close(frame)) => {
                let reason = frame.map_or(0, |f| f.reason.len());
                assert!(reason + 2 <= MAX_CONTROL, "close reason of {reason} bytes");
            }
            Ok(Message::Frame(_)) => panic!("read() returned a raw frame"),
            // The relay closes the socket on any read error (1009 for
            // `Capacity`): nothing more is read.
            Err(_) => break,
        }
    }
    let written = ws.get_ref().written;
    assert!(
        written <= stream.len() + MAX_CLOSE_FRAME,
        "the server wrote {written} bytes for {} received",
        stream.len()
    );
}

/// A client's stream: the frames written by tungstenite in the client role
/// (so masked as a browser masks them).
fn client_stream(limit_selector: u8, chunk: u8, write: impl FnOnce(&mut ClientWs)) -> Vec<u8> {
    let mut ws = WebSocket::from_raw_socket(Recorder(Vec::new()), Role::Client, None);
    write(&mut ws);
    let _ = ws.flush();
    let mut bytes = vec![limit_selector, chunk];
    bytes.extend_from_slice(&ws.get_ref().0);
    bytes
}

type ClientWs = WebSocket<Recorder>;

/// Keeps what a client writes; nothing to read.
#[derive(Debug)]
struct Recorder(Vec<u8>);

impl Read for Recorder {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn send(ws: &mut ClientWs, message: Message) {
    ws.send(message)
        .unwrap_or_else(|e| panic!("writing a seed frame: {e}"));
}

/// An attach followed by circuit traffic, fragmented messages, control
/// frames, a close, and a frame over the limit. Masks are random, so
/// writing the seeds again gives other bytes.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let attach =
        r#"{"type":"attach","circuit_id":"0123456789abcdef","token":"AAECAwQFBgcICQoLDA0ODw=="}"#;
    vec![
        (
            "attach_then_binary",
            client_stream(63, 0, |ws| {
                send(ws, Message::text(attach));
                send(ws, Message::binary(vec![0xab; 300]));
                send(ws, Message::binary(b"\x00encrypted frame".to_vec()));
            }),
        ),
        (
            "attach_small_reads",
            client_stream(31, 3, |ws| {
                send(ws, Message::text(attach));
                send(ws, Message::binary(vec![1, 2, 3]));
            }),
        ),
        (
            "fragmented",
            client_stream(15, 0, |ws| {
                send(
                    ws,
                    Message::Frame(Frame::message(
                        b"{\"type\":\"att".to_vec(),
                        OpCode::Data(Data::Text),
                        false,
                    )),
                );
                send(ws, Message::Ping(b"keepalive".to_vec().into()));
                send(
                    ws,
                    Message::Frame(Frame::message(
                        b"ach\",\"circuit_id\":\"c\",\"token\":\"t\"}".to_vec(),
                        OpCode::Data(Data::Continue),
                        true,
                    )),
                );
                send(ws, Message::binary(vec![9; 40]));
            }),
        ),
        (
            "close",
            client_stream(0, 0, |ws| {
                send(ws, Message::Pong(Vec::new().into()));
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "bye".into(),
                }));
                let _ = ws.flush();
            }),
        ),
        (
            "over_limit",
            client_stream(0, 0, |ws| send(ws, Message::binary(vec![0; 64]))),
        ),
    ]
}
