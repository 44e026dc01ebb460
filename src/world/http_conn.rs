//! HTTP/1.1 over a traced connection: the codec (`wire::http`) says where a
//! message ends, the connection (`world::conn`) moves and records the bytes.
//! Each message is recorded once, whole, with what it is.

use crate::record::trace::Kind;
use crate::wire::event_stream::{BlockSplitter, block_description};
use crate::wire::http::{
    ChunkedDecoder, Framing, HttpError, LAST_CHUNK, MAX_BODY_BYTES, Request, Response,
    ResponseStart, chunk, decode_request, decode_response_start,
};
use crate::world::conn::{Attempt, Carried, Conn, Label};
use std::fmt;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a message could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The bytes are not an HTTP message we accept (the peer's fault).
    Http(HttpError),
    /// The peer closed the connection before any byte of the answer.
    ClosedBeforeAnswer,
    /// The peer closed the connection part-way through a message.
    ClosedMidMessage,
    /// The peer closed the connection before the end of a chunked stream:
    /// the stream was cut short, not finished.
    ClosedMidStream,
    /// The connection failed (reset by the network, say).
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Http(e) => write!(f, "{e}"),
            ReadError::ClosedBeforeAnswer => {
                write!(f, "connection closed before any byte of the answer")
            }
            ReadError::ClosedMidMessage => {
                write!(f, "connection closed in the middle of a message")
            }
            ReadError::ClosedMidStream => {
                write!(f, "connection closed before the end of the stream")
            }
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

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Conn<S> {
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
            Framing::Chunked => {
                self.take(head_len);
                let mut decoder = ChunkedDecoder::new();
                let mut wire = head_len;
                loop {
                    let (data, used) = decoder.push(self.buffered())?;
                    self.take(used);
                    wire += used;
                    response.body.extend_from_slice(&data);
                    if decoder.is_done() {
                        break;
                    }
                    if !self.read_more().await? {
                        return Err(ReadError::ClosedMidMessage);
                    }
                }
                self.record_received(Kind::Response, response.summary(), wire);
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
    /// head of a stream (chunked, or until close), whose body then comes
    /// from a [`StreamBody`].
    pub async fn read_response_start(&mut self) -> Result<(Response, Framing), ReadError> {
        let (mut response, framing, head_len) = self.read_head().await?;
        match framing {
            Framing::Length(len) => {
                response.body = self.read_exactly(head_len, len).await?;
                self.record_received(Kind::Response, response.summary(), head_len + len);
            }
            Framing::Chunked | Framing::UntilClose => {
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
                        return Err(if self.buffered().is_empty() {
                            ReadError::ClosedBeforeAnswer
                        } else {
                            ReadError::ClosedMidMessage
                        });
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
        label.attempt = attempt;
        self.send(&request.to_bytes(), label).await
    }

    /// Writes a whole response, saying how many events it carries.
    pub async fn send_response(
        &mut self,
        response: &Response,
        events: Option<Carried>,
    ) -> io::Result<()> {
        let label = Label::new(Kind::Response, response.summary()).carrying(events);
        self.send(&response.to_bytes(), label).await
    }

    /// Writes the head of a streamed response.
    pub async fn send_stream_head(&mut self, response: &Response) -> io::Result<()> {
        let label = Label::new(Kind::StreamHead, response.summary());
        self.send(&response.stream_head_bytes(), label).await
    }

    /// Writes one block of an event stream (an event, a comment) as one
    /// message, one chunk of the chunked body, saying how many events it
    /// carries.
    pub async fn send_block(&mut self, block: &[u8], events: Option<Carried>) -> io::Result<()> {
        let label = Label::new(Kind::StreamBlock, block_description(block)).carrying(events);
        self.send(&chunk(block), label).await
    }

    /// Ends a streamed body on purpose: the last chunk, `0\r\n\r\n`.
    pub async fn send_stream_end(&mut self) -> io::Result<()> {
        let label = Label::new(Kind::StreamEnd, "end of stream".into());
        self.send(LAST_CHUNK, label).await
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
            ReadError::ClosedBeforeAnswer
            | ReadError::ClosedMidMessage
            | ReadError::ClosedMidStream
            | ReadError::Io(_) => self.fail(&error.to_string()),
        }
    }
}

/// The body of a streamed response (an event stream), read as it arrives
/// and recorded block by block: a block is what its sender wrote as one
/// message (one chunk, from our servers).
pub struct StreamBody {
    /// `Some` for a chunked body, `None` for one that runs until close.
    chunks: Option<ChunkedDecoder>,
    splitter: BlockSplitter,
}

impl StreamBody {
    pub fn new(framing: Framing) -> StreamBody {
        StreamBody {
            chunks: (framing == Framing::Chunked).then(ChunkedDecoder::new),
            splitter: BlockSplitter::default(),
        }
    }

    /// The next bytes of the body and the blocks they completed, or
    /// `Ok(None)` when the body has ended: its last chunk arrived (or, for a
    /// body without chunks, the server closed the connection). A chunked
    /// body whose connection closes before its last chunk is an error: the
    /// stream was cut short, not finished.
    pub async fn next<S: AsyncRead + AsyncWrite + Unpin + 'static>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, ReadError> {
        loop {
            if let Some(decoder) = &self.chunks
                && decoder.is_done()
            {
                return Ok(None);
            }
            if !conn.buffered().is_empty() {
                let data = match &mut self.chunks {
                    Some(decoder) => {
                        let (data, used) = decoder.push(conn.buffered())?;
                        conn.take(used);
                        if decoder.is_done() {
                            conn.record_received(
                                Kind::StreamEnd,
                                "end of stream".into(),
                                LAST_CHUNK.len(),
                            );
                        }
                        data
                    }
                    None => conn.take(usize::MAX),
                };
                let blocks = self.splitter.push(&data);
                for block in &blocks {
                    let what = block_description(block);
                    // On the wire, each block came as one chunk: its size
                    // line and CRLF count as bytes of the message.
                    let wire = match self.chunks {
                        Some(_) => chunk(block).len(),
                        None => block.len(),
                    };
                    conn.record_received(Kind::StreamBlock, what, wire);
                }
                if !data.is_empty() || self.chunks.as_ref().is_some_and(|d| d.is_done()) {
                    return Ok(Some((data, blocks)));
                }
            }
            if !conn.read_more().await? {
                return match self.chunks {
                    None => Ok(None),
                    Some(_) => Err(ReadError::ClosedMidStream),
                };
            }
        }
    }
}
