//! What openraft holds a snapshot's body in (`TypeConfig::SnapshotData`): the body the
//! state machine built or installed, shared (an `Arc`) and never copied to be sent, or
//! the bytes a follower is receiving.
//!
//! openraft's default, `Cursor<Vec<u8>>`, made `get_current_snapshot` copy the whole
//! body for every send to a follower, and `build_snapshot` once more: 410 MB each time
//! for the map of a probe on 2026-12-07.

use std::io::{Cursor, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// A body shared between the state machine and the sends that read it.
#[derive(Debug, Clone)]
pub struct SharedBody(pub Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A snapshot's body as openraft holds it.
#[derive(Debug)]
pub enum SnapshotData {
    /// Built or installed here, read to be sent: read-only.
    Shared(Cursor<SharedBody>),
    /// Being received from the leader, chunk by chunk.
    Receiving(Cursor<Vec<u8>>),
}

impl SnapshotData {
    /// A reader over `body`, which it shares.
    pub fn shared(body: &Arc<Vec<u8>>) -> SnapshotData {
        SnapshotData::Shared(Cursor::new(SharedBody(body.clone())))
    }

    /// An empty body to receive into.
    pub fn receiving() -> SnapshotData {
        SnapshotData::Receiving(Cursor::new(Vec::new()))
    }

    /// The whole body.
    pub fn bytes(&self) -> &[u8] {
        match self {
            SnapshotData::Shared(c) => c.get_ref().as_ref(),
            SnapshotData::Receiving(c) => c.get_ref(),
        }
    }

    /// The whole body, owned: a received body as it is; a shared one shares on.
    pub fn into_body(self) -> Arc<Vec<u8>> {
        match self {
            SnapshotData::Shared(c) => c.into_inner().0,
            SnapshotData::Receiving(c) => Arc::new(c.into_inner()),
        }
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Shared(c) => Pin::new(c).poll_read(cx, buf),
            SnapshotData::Receiving(c) => Pin::new(c).poll_read(cx, buf),
        }
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match self.get_mut() {
            SnapshotData::Shared(c) => Pin::new(c).start_seek(position),
            SnapshotData::Receiving(c) => Pin::new(c).start_seek(position),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match self.get_mut() {
            SnapshotData::Shared(c) => Pin::new(c).poll_complete(cx),
            SnapshotData::Receiving(c) => Pin::new(c).poll_complete(cx),
        }
    }
}

/// The error of a write to a shared body.
fn read_only() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "a snapshot built or installed here is read-only",
    )
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SnapshotData::Shared(_) => Poll::Ready(Err(read_only())),
            SnapshotData::Receiving(c) => Pin::new(c).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Shared(_) => Poll::Ready(Ok(())),
            SnapshotData::Receiving(c) => Pin::new(c).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SnapshotData::Shared(_) => Poll::Ready(Ok(())),
            SnapshotData::Receiving(c) => Pin::new(c).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    /// A send reads the body the state machine holds, not a copy of it.
    #[tokio::test]
    async fn a_shared_body_is_read_without_a_copy() {
        let body = Arc::new(b"RKVSNAP2 and the rest".to_vec());
        let mut data = SnapshotData::shared(&body);
        assert!(
            std::ptr::eq(data.bytes().as_ptr(), body.as_ptr()),
            "the snapshot's bytes are a copy of the body"
        );
        assert_eq!(Arc::strong_count(&body), 2);
        let mut read = Vec::new();
        data.seek(SeekFrom::Start(9)).await.unwrap();
        data.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"and the rest");
        assert!(
            data.write_all(b"x").await.is_err(),
            "a shared body was written"
        );
        assert!(Arc::ptr_eq(&data.into_body(), &body));
    }

    #[tokio::test]
    async fn a_received_body_takes_chunks_at_their_offsets() {
        let mut data = SnapshotData::receiving();
        data.write_all(b"abcdef").await.unwrap();
        data.seek(SeekFrom::Start(3)).await.unwrap();
        data.write_all(b"DEFG").await.unwrap();
        data.shutdown().await.unwrap();
        assert_eq!(data.bytes(), b"abcDEFG");
        assert_eq!(data.into_body().as_slice(), b"abcDEFG");
    }
}
