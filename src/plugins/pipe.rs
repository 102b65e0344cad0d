//! A plugin's stdout and stderr: kept up to a few KiB, the rest discarded.
//!
//! wasmtime-wasi's in-memory pipe fails a write past its capacity, which
//! traps the guest: a plugin that printed too much would fail its delivery.
//! Here output past the capacity is dropped and noted instead, so printing
//! costs the plugin only the CPU time it spends doing it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes a guest may hand over in one write: a permit, not a bound on
/// what is kept.
const WRITE_PERMIT: usize = 64 << 10;

#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    dropped: usize,
}

/// An output stream that keeps its first `capacity` bytes.
#[derive(Clone)]
pub struct BoundedPipe {
    capacity: usize,
    kept: Arc<Mutex<Kept>>,
}

impl BoundedPipe {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            kept: Arc::default(),
        }
    }

    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.capacity - kept.bytes.len();
        let take = bytes.len().min(room);
        kept.bytes.extend_from_slice(&bytes[..take]);
        kept.dropped += bytes.len() - take;
    }

    /// What was kept, and how many bytes were written past it.
    pub fn contents(&self) -> (Vec<u8>, usize) {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        (kept.bytes.clone(), kept.dropped)
    }
}

impl IsTerminal for BoundedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for BoundedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for BoundedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_capacity_is_dropped_not_refused() {
        let mut pipe = BoundedPipe::new(8);
        pipe.write(Bytes::from_static(b"hello ")).unwrap();
        pipe.write(Bytes::from_static(b"world, again")).unwrap();
        assert_eq!(pipe.check_write().unwrap(), WRITE_PERMIT);
        let (kept, dropped) = pipe.contents();
        assert_eq!(kept, b"hello wo");
        assert_eq!(dropped, 10);
    }
}
