//! HTTP/1.1 over a traced connection: the codec (`wire::http`) says where a
//! message ends, the connection (`world::conn`) moves and records the bytes.
//! Each message is recorded once, whole, with what it is.

use crate::record::trace::Kind;
use crate::wire::event_stream::{BlockSplitter, block_summary};
use crate::wire::http::{
    Framing, HttpError, MAX_BODY_BYTES, Request, Response, ResponseStart, decode_request,
    decode_response_start,
};
use crate::world::conn::{Attempt, Conn, Label};
use std::fmt;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a message could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The bytes are not an HTTP message we accept (the peer's fault).
    Http(HttpError),
    /// The peer closed the connection part-way through a message.
    ClosedMidMessage,
    /// The connection failed (reset by the network, say).
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Http(e) => write!(f, "{e}"),
            ReadError::ClosedMidMessage => write!(f, "connection closed mid-message"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<HttpError> for ReadError {
    fn from(e: HttpError) -> Self {
        ReadError::Http(e)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Reads the next request. `Ok(None)` is the client closing the connection
    /// between requests, which is how keep-alive connections normally end.
    pub async fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        loop {
            if let Some((request, len)) = decode_request(self.buffered())? {
                self.take(len);
                self.record_received(Kind::Request, request.summary(), len);
                return Ok(Some(request));
            }
            if !self.read_more().await? {
                return if self.buffered().is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::ClosedMidMessage)
                };
            }
        }
    }

    /// Reads the next response, whole, its body included (to the end of the
    /// connection when it has no length).
    pub async fn read_response(&mut self) -> Result<Response, ReadError> {
        let (mut response, framing, head_len) = self.read_head().await?;
        match framing {
            Framing::Length(len) => {
                response.body = self.read_exactly(head_len, len).await?;
                self.record_received(Kind::Response, response.summary(), head_len + len);
            }
            Framing::UntilClose => {
                // No length: the body runs to the end of the connection
                // (RFC 9112 section 6.3, rule 8).
                while self.read_more().await? {
                    if self.buffered().len() > head_len + MAX_BODY_BYTES {
                        return Err(HttpError::BodyTooLarge.into());
                    }
                }
                let all = self.take(usize::MAX);
                response.body = all[head_len..].to_vec();
                self.record_received(Kind::Response, response.summary(), all.len());
            }
        }
        Ok(response)
    }

    /// Reads the start of a response: the whole response when it has a
    /// length (recorded as one message, as `read_response` does), or only the
    /// head of a stream, whose body then comes from a [`StreamBody`].
    pub async fn read_response_start(&mut self) -> Result<(Response, Framing), ReadError> {
        let (mut response, framing, head_len) = self.read_head().await?;
        match framing {
            Framing::Length(len) => {
                response.body = self.read_exactly(head_len, len).await?;
                self.record_received(Kind::Response, response.summary(), head_len + len);
            }
            Framing::UntilClose => {
                self.take(head_len);
                self.record_received(Kind::StreamHead, response.summary(), head_len);
            }
        }
        Ok((response, framing))
    }

    /// Waits for the head of the final answer (skipping interim `1xx` ones),
    /// leaving it in the buffer.
    async fn read_head(&mut self) -> Result<(Response, Framing, usize), ReadError> {
        loop {
            match decode_response_start(self.buffered())? {
                Some(ResponseStart::Interim(len)) => {
                    self.take(len);
                }
                Some(ResponseStart::Head {
                    response,
                    head_len,
                    framing,
                }) => return Ok((response, framing, head_len)),
                None => {
                    if !self.read_more().await? {
                        return Err(ReadError::ClosedMidMessage);
                    }
                }
            }
        }
    }

    /// Waits until `head_len + body_len` bytes are buffered, takes them, and
    /// returns the body.
    async fn read_exactly(
        &mut self,
        head_len: usize,
        body_len: usize,
    ) -> Result<Vec<u8>, ReadError> {
        while self.buffered().len() < head_len + body_len {
            if !self.read_more().await? {
                return Err(ReadError::ClosedMidMessage);
            }
        }
        Ok(self.take(head_len + body_len).split_off(head_len))
    }

    pub async fn send_request(&mut self, request: &Request, attempt: Attempt) -> io::Result<()> {
        let mut label = Label::new(Kind::Request, request.summary());
        label.retry = attempt == Attempt::Retry;
        self.send(&request.to_bytes(), label).await
    }

    /// Writes a whole response, saying how many events it carries.
    pub async fn send_response(
        &mut self,
        response: &Response,
        events: Option<u32>,
    ) -> io::Result<()> {
        let label = Label::new(Kind::Response, response.summary()).carrying(events);
        self.send(&response.to_bytes(), label).await
    }

    /// Writes the head of a streamed response.
    pub async fn send_stream_head(&mut self, response: &Response) -> io::Result<()> {
        let label = Label::new(Kind::StreamHead, response.summary());
        self.send(&response.stream_head_bytes(), label).await
    }

    /// Writes one block of an event stream (an event, a comment) as one message.
    pub async fn send_block(&mut self, block: &[u8]) -> io::Result<()> {
        let (what, events) = block_summary(block);
        let label = Label::new(Kind::StreamBlock, what).carrying(events);
        self.send(block, label).await
    }

    /// Ends a connection whose peer sent something that is not HTTP: answers
    /// with the protocol's status (400, 431, 413, 501), then closes. A
    /// connection that failed gets no answer, only a record.
    pub async fn reject(mut self, error: &ReadError) {
        match error {
            ReadError::Http(e) => {
                let status = e.status();
                let _ = self
                    .send_response(&Response::error(status, &e.to_string()), None)
                    .await;
                self.close(&format!("sent {status}")).await
            }
            ReadError::ClosedMidMessage | ReadError::Io(_) => self.fail(&error.to_string()),
        }
    }
}

/// The body of a streamed response (an event stream), read as it arrives
/// and recorded block by block: a block is what its sender wrote as one
/// message.
#[derive(Default)]
pub struct StreamBody {
    splitter: BlockSplitter,
}

impl StreamBody {
    /// The next bytes of the body and the blocks they completed, or
    /// `Ok(None)` when the body has ended (the server closed the stream).
    pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> io::Result<Option<(Vec<u8>, Vec<Vec<u8>>)>> {
        if conn.buffered().is_empty() && !conn.read_more().await? {
            return Ok(None);
        }
        let raw = conn.take(usize::MAX);
        let blocks = self.splitter.push(&raw);
        for block in &blocks {
            let (what, _) = block_summary(block);
            conn.record_received(Kind::StreamBlock, what, block.len());
        }
        Ok(Some((raw, blocks)))
    }
}
