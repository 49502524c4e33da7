//! COS spells response header names like `ETag`, `Content-Length`, `x-cos-request-id`, and the
//! official Python SDK hands them to users in a plain dict (`response['ETag']`), so the case
//! matters. hyper always writes lower-case names (its `title_case_headers` gives `Etag`), so the
//! connection is wrapped in this writer, which rewrites the names in each response head.
//!
//! To know where a head starts it must skip bodies: the server puts the body length of every
//! response in the private header [`BODY_LEN_HEADER`], which this writer removes. A head without
//! it (other than a `1xx`) switches the connection to pass-through, never corrupting a body.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Private response header: how many body bytes follow the head on the wire.
pub const BODY_LEN_HEADER: &str = "x-cos-local-body-len";
/// A head larger than this is not ours to rewrite: pass it through.
const MAX_HEAD: usize = 64 * 1024;

enum State {
    /// Collecting a response head.
    Head,
    /// Passing this many body bytes through unchanged.
    Body(u64),
    /// Something unexpected: pass everything through from now on.
    Passthrough,
}

pub struct CaseFixingIo<T> {
    inner: T,
    state: State,
    head: Vec<u8>,
    pending: Vec<u8>,
    pending_pos: usize,
}

impl<T> CaseFixingIo<T> {
    pub fn new(inner: T) -> Self {
        CaseFixingIo {
            inner,
            state: State::Head,
            head: Vec::new(),
            pending: Vec::new(),
            pending_pos: 0,
        }
    }
}

/// The COS spelling of a lower-case header name.
fn canonical(name: &str) -> String {
    // COS's own names and S3's (`x-amz-meta-*` keys reach users as sent) stay lower-case.
    if name.starts_with("x-cos-") || name.starts_with("x-amz-") {
        return name.to_string();
    }
    if name == "etag" {
        return "ETag".to_string();
    }
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Rewrite one complete head; returns the new bytes and the body length that follows.
fn rewrite_head(head: &[u8]) -> Option<(Vec<u8>, u64)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut out = String::with_capacity(head.len());
    out.push_str(status_line);
    out.push_str("\r\n");
    let mut body_len = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case(BODY_LEN_HEADER) {
            body_len = value.trim().parse::<u64>().ok();
            continue;
        }
        out.push_str(&canonical(&name.to_ascii_lowercase()));
        out.push(':');
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let body_len = match body_len {
        Some(n) => n,
        None if (100..200).contains(&status) => 0,
        None => return None,
    };
    Some((out.into_bytes(), body_len))
}

impl<T: AsyncWrite + Unpin> CaseFixingIo<T> {
    /// Write out what a rewritten head left pending.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_pos < self.pending.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_pos..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_pos += n;
        }
        self.pending.clear();
        self.pending_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CaseFixingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        match this.state {
            State::Passthrough => Pin::new(&mut this.inner).poll_write(cx, buf),
            State::Body(remaining) => {
                let take = buf
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..take]))?;
                let left = remaining - n as u64;
                this.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                Poll::Ready(Ok(n))
            }
            State::Head => {
                // Accept bytes up to the end of the head (the blank line).
                let before = this.head.len();
                let search_from = before.saturating_sub(3);
                this.head.extend_from_slice(buf);
                let end = this.head[search_from..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| search_from + p + 4);
                match end {
                    Some(end) => {
                        let consumed = end - before;
                        this.head.truncate(end);
                        let head = std::mem::take(&mut this.head);
                        match rewrite_head(&head) {
                            Some((rewritten, body_len)) => {
                                this.pending = rewritten;
                                this.state = if body_len == 0 {
                                    State::Head
                                } else {
                                    State::Body(body_len)
                                };
                            }
                            None => {
                                this.pending = head;
                                this.state = State::Passthrough;
                            }
                        }
                        Poll::Ready(Ok(consumed))
                    }
                    None if this.head.len() > MAX_HEAD => {
                        this.pending = std::mem::take(&mut this.head);
                        this.state = State::Passthrough;
                        Poll::Ready(Ok(buf.len()))
                    }
                    None => Poll::Ready(Ok(buf.len())),
                }
            }
        }
    }

    /// Bodies go out vectored (hyper then queues its buffers instead of copying each body
    /// chunk into one flat buffer); a head is handled through `poll_write`.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        match this.state {
            State::Passthrough => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            State::Body(remaining) => {
                let mut limited = Vec::with_capacity(bufs.len());
                let mut room = usize::try_from(remaining).unwrap_or(usize::MAX);
                for b in bufs {
                    if room == 0 {
                        break;
                    }
                    let take = b.len().min(room);
                    limited.push(io::IoSlice::new(&b[..take]));
                    room -= take;
                }
                let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &limited))?;
                let left = remaining - n as u64;
                this.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                Poll::Ready(Ok(n))
            }
            State::Head => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map(|b| &**b)
                    .unwrap_or(&[]);
                self.poll_write(cx, first)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CaseFixingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn names() {
        assert_eq!(canonical("etag"), "ETag");
        assert_eq!(canonical("content-length"), "Content-Length");
        assert_eq!(canonical("x-cos-meta-author"), "x-cos-meta-author");
        assert_eq!(
            canonical("access-control-allow-origin"),
            "Access-Control-Allow-Origin"
        );
    }

    #[tokio::test]
    async fn rewrites_heads_and_leaves_bodies_alone() {
        let mut out = Vec::new();
        {
            let mut io = CaseFixingIo::new(&mut out);
            // Written in awkward pieces, the second response right after the first body.
            let wire = b"HTTP/1.1 200 OK\r\netag: \"x\"\r\nx-cos-local-body-len: 11\r\ncontent-length: 11\r\n\r\netag: body\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-cos-request-id: r\r\nx-cos-local-body-len: 0\r\n\r\n";
            for chunk in wire.chunks(7) {
                io.write_all(chunk).await.expect("write");
            }
            io.flush().await.expect("flush");
        }
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 11\r\n\r\netag: body\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-cos-request-id: r\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn vectored_writes_rewrite_heads_and_keep_bodies() {
        use std::io::IoSlice;
        let mut out = Vec::new();
        {
            let mut io = CaseFixingIo::new(&mut out);
            let head = b"HTTP/1.1 200 OK\r\netag: \"x\"\r\nx-cos-local-body-len: 6\r\n\r\n";
            let mut pieces: Vec<&[u8]> = vec![
                head,
                b"abc",
                b"def",
                b"HTTP/1.1 204 No Content\r\nx-cos-local-body-len: 0\r\n\r\n",
            ];
            while !pieces.is_empty() {
                let slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
                let mut n = io.write_vectored(&slices).await.expect("write");
                while n > 0 {
                    if n >= pieces[0].len() {
                        n -= pieces[0].len();
                        pieces.remove(0);
                    } else {
                        pieces[0] = &pieces[0][n..];
                        n = 0;
                    }
                }
            }
            io.flush().await.expect("flush");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "HTTP/1.1 200 OK\r\nETag: \"x\"\r\n\r\nabcdefHTTP/1.1 204 No Content\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn head_without_length_switches_to_passthrough() {
        let mut out = Vec::new();
        {
            let mut io = CaseFixingIo::new(&mut out);
            io.write_all(b"HTTP/1.1 200 OK\r\netag: a\r\n\r\nHTTP/1.1 200 OK\r\netag: b\r\n\r\n")
                .await
                .expect("write");
            io.flush().await.expect("flush");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "HTTP/1.1 200 OK\r\netag: a\r\n\r\nHTTP/1.1 200 OK\r\netag: b\r\n\r\n"
        );
    }
}
