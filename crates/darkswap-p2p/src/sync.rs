//! The wire of `/darkswap/orderbook-sync/2.0.0`, the request-response
//! protocol nodes reconcile their books with (when and what to ask, and
//! what to do with the answer, is `darkswap_core::sync`).
//!
//! Framing: a 4-byte big-endian length, then one DarkSwap envelope carrying
//! an `OrderbookRequest` or `OrderbookResponse`. The length is checked
//! against the size limit before the body is read.

use std::io;

use darkswap_core::sync::{SyncRequest, SyncResponse};
use darkswap_proto::{Message, decode_with_limit, encode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// The orderbook sync protocol id (version 2: reconciliation).
pub const SYNC_PROTOCOL: StreamProtocol =
    StreamProtocol::new(darkswap_core::protocols::ORDERBOOK_SYNC_PROTOCOL);

#[derive(Debug, Clone)]
pub(crate) struct SyncCodec {
    pub(crate) max_size: usize,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Message> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over limit {max}"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    decode_with_limit(&body, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    message: &Message,
    max: usize,
) -> io::Result<()> {
    let body = encode(message);
    if body.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message over the size limit",
        ));
    }
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.close().await
}

fn unexpected(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {kind} on the sync protocol"),
    )
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, self.max_size).await? {
            Message::OrderbookReconcile(r) => Ok(SyncRequest::Reconcile(r)),
            Message::OrderbookFetch(f) => Ok(SyncRequest::Fetch(f)),
            Message::OrderbookRequest(r) => Ok(SyncRequest::Snapshot(r)),
            other => Err(unexpected(other.kind())),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, self.max_size).await? {
            Message::OrderbookReconcile(r) => Ok(SyncResponse::Reconcile(r)),
            Message::OrderbookResponse(r) => Ok(SyncResponse::Items(r)),
            other => Err(unexpected(other.kind())),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let message = match request {
            SyncRequest::Reconcile(r) => Message::OrderbookReconcile(r),
            SyncRequest::Fetch(f) => Message::OrderbookFetch(f),
            SyncRequest::Snapshot(r) => Message::OrderbookRequest(r),
        };
        write_frame(io, &message, self.max_size).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let message = match response {
            SyncResponse::Reconcile(r) => Message::OrderbookReconcile(r),
            SyncResponse::Items(r) => Message::OrderbookResponse(r),
        };
        write_frame(io, &message, self.max_size).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkswap_proto::OrderbookRequest;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_limits_hold() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            let req = OrderbookRequest {
                base: "BTC".into(),
                quote: "rune:1:0".into(),
            };
            write_frame(&mut buf, &Message::OrderbookRequest(req.clone()), 1024)
                .await
                .unwrap();
            let bytes = buf.into_inner();
            let mut codec = SyncCodec { max_size: 1024 };
            let got = request_response::Codec::read_request(
                &mut codec,
                &SYNC_PROTOCOL,
                &mut Cursor::new(bytes.clone()),
            )
            .await
            .unwrap();
            assert_eq!(got, SyncRequest::Snapshot(req));
            // A response reader refuses a request frame.
            assert!(
                request_response::Codec::read_response(
                    &mut codec,
                    &SYNC_PROTOCOL,
                    &mut Cursor::new(bytes)
                )
                .await
                .is_err()
            );
            // A length over the limit is refused before reading the body.
            let mut huge = (2_000_000u32).to_be_bytes().to_vec();
            huge.extend_from_slice(&[0; 8]);
            let err = read_frame(&mut Cursor::new(huge), 1024).await.unwrap_err();
            assert!(err.to_string().contains("over limit"));
            // Truncated and garbage bodies are errors.
            assert!(
                read_frame(&mut Cursor::new(vec![0, 0, 0, 9, 1]), 1024)
                    .await
                    .is_err()
            );
            assert!(
                read_frame(&mut Cursor::new(vec![0, 0, 0, 2, 0xff, 0xff]), 1024)
                    .await
                    .is_err()
            );
        });
    }
}
