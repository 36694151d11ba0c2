//! The write side of a link: one task per connection drains a queue of ready frames into the
//! socket.
//!
//! Frames are copied into a buffered writer back to back and flushed only when the queue runs
//! dry, so a burst of small frames costs one `write` syscall instead of one per frame, while a
//! lone frame still goes out at once.

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::UnboundedReceiver;

/// Bytes buffered before a write is forced even if more frames are queued.
const WRITE_BUFFER: usize = 64 * 1024;

/// Writes every frame from `rx` to `w` until the queue closes or the socket fails.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut rx: UnboundedReceiver<Bytes>,
    w: W,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, w);
    while let Some(frame) = rx.recv().await {
        w.write_all(&frame).await?;
        while let Ok(frame) = rx.try_recv() {
            w.write_all(&frame).await?;
        }
        w.flush().await?;
    }
    Ok(())
}
