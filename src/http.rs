//! HTTP/1.1 on the simulated wire: just enough of RFC 9112 for the lessons,
//! written out so that every byte a mechanism sends is visible.
//!
//! A request and its response, exactly as they cross the network:
//!
//! ```text
//! GET /updates?after=3 HTTP/1.1\r\n
//! Host: server\r\n
//! Accept: application/json\r\n
//! \r\n
//! ```
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Content-Type: application/json\r\n
//! Content-Length: 13\r\n
//! \r\n
//! {"events":[]}
//! ```
//!
//! The head is parsed with `httparse` (plumbing); bodies are framed by
//! `Content-Length` only. What a peer sends can never panic this code: a
//! malformed head is a `400`, an oversized one a `431`, an oversized body a
//! `413`, and a transfer coding we do not speak a `501`.
//!
//! Every message written or read goes into the trace, so the report's byte
//! counts are the bytes that really crossed the simulated network.

use crate::trace::{Dir, Event, HostTrace};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request or response head (request line + headers) we accept.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most header fields in one head.
pub const MAX_HEADERS: usize = 32;
/// Largest body we accept.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query, `/updates?after=3`.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Request {
    pub fn get(target: &str, host: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            minor_version: 1,
            headers: vec![("Host".into(), host.into())],
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The value of query parameter `name`, undecoded (our values are numbers).
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Does the client want the connection kept open after the response?
    /// HTTP/1.1 defaults to yes, HTTP/1.0 to no; `Connection` overrides.
    pub fn keep_alive(&self) -> bool {
        match self.header("connection").map(|v| v.to_ascii_lowercase()) {
            Some(v) if v.split(',').any(|t| t.trim() == "close") => false,
            Some(v) if v.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => self.minor_version == 1,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method, self.target, self.minor_version
        );
        // Framing headers are ours to write: a copied message (a proxy's)
        // must not carry the original's as well.
        for (n, v) in self.headers.iter().filter(|(n, _)| !is_framing(n)) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// How the trace names this message: its request line, and the
    /// `Last-Event-ID` it carries if any (the header SSE resumes with).
    pub fn summary(&self) -> String {
        match self.header("last-event-id") {
            Some(id) => format!("{} {} [Last-Event-ID: {id}]", self.method, self.target),
            None => format!("{} {}", self.method, self.target),
        }
    }
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            reason: reason_phrase(status).into(),
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// A short plain-text error answer; the connection is closed after it.
    pub fn error(status: u16, why: &str) -> Response {
        let mut r = Response::new(status, "text/plain", format!("{why}\n").into_bytes());
        r.headers.push(("Connection".into(), "close".into()));
        r
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `405`, saying which method the resource takes (RFC 9110 section 15.5.6
    /// requires the `Allow` header).
    pub fn method_not_allowed(allow: &str) -> Response {
        let mut r = Response::error(405, &format!("only {allow}"));
        r.headers.push(("Allow".into(), allow.into()));
        r
    }

    /// The head of a response whose body is a stream: no `Content-Length`,
    /// so the body runs until the server closes the connection (RFC 9112
    /// section 6.3, rule 8). The body follows in later writes.
    pub fn stream_head_bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (n, v) in self.headers.iter().filter(|(n, _)| !is_framing(n)) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (n, v) in self.headers.iter().filter(|(n, _)| !is_framing(n)) {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        // RFC 9110 section 8.6: no Content-Length on 1xx and 204 answers.
        if !(self.status < 200 || self.status == 204) {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    pub fn summary(&self) -> String {
        format!("{} {}", self.status, self.reason)
    }
}

/// Headers that say where a message ends: written by `to_bytes`, never copied.
fn is_framing(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1): a proxy removes `Connection`
/// and every header it names before forwarding a message.
pub fn strip_hop_by_hop(headers: &mut Vec<(String, String)>) {
    let named: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    headers.retain(|(n, _)| {
        let n = n.to_ascii_lowercase();
        n != "connection" && n != "keep-alive" && !named.contains(&n)
    });
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Why a message could not be read. The first four are the peer's fault and
/// map to an HTTP status; the rest are the network's.
#[derive(Debug)]
pub enum HttpError {
    /// Not HTTP/1.1 as RFC 9112 writes it: answer `400`.
    Malformed(String),
    /// The head is over `MAX_HEAD_BYTES` or has over `MAX_HEADERS` fields: `431`.
    HeadTooLarge,
    /// The declared body is over `MAX_BODY_BYTES`: `413`.
    BodyTooLarge,
    /// A `Transfer-Encoding` we do not implement: `501`.
    Unsupported(String),
    /// The peer closed the connection part-way through a message.
    UnexpectedEof,
    Io(io::Error),
}

impl HttpError {
    /// The status a server answers this error with, if it is the peer's fault.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Malformed(_) => Some(400),
            HttpError::HeadTooLarge => Some(431),
            HttpError::BodyTooLarge => Some(413),
            HttpError::Unsupported(_) => Some(501),
            HttpError::UnexpectedEof | HttpError::Io(_) => None,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed message: {why}"),
            HttpError::HeadTooLarge => write!(
                f,
                "head larger than {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
            ),
            HttpError::BodyTooLarge => write!(f, "body larger than {MAX_BODY_BYTES} bytes"),
            HttpError::Unsupported(what) => write!(f, "unsupported: {what}"),
            HttpError::UnexpectedEof => write!(f, "connection closed mid-message"),
            HttpError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

/// The network's dice for `network.loss`, shared by every connection of a host
/// and seeded from the scenario, so the same seed loses the same messages.
#[derive(Clone)]
pub struct Loss {
    pub probability: f64,
    pub rng: Rc<RefCell<ChaCha8Rng>>,
}

impl Loss {
    pub fn none() -> Loss {
        use rand::SeedableRng;
        Loss {
            probability: 0.0,
            rng: Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(0))),
        }
    }

    fn strikes(&self) -> bool {
        // Drawing only when loss is on keeps lossless runs independent of it.
        self.probability > 0.0 && self.rng.borrow_mut().random_bool(self.probability)
    }
}

/// The network's switch to kill a connection at once, as when a phone loses
/// its network and the operating system tells every app its sockets are gone.
/// (turmoil's own partitions are silent: packets vanish and nobody is told.)
#[derive(Default)]
pub struct Severance {
    severed: std::cell::Cell<bool>,
    /// The task blocked reading this connection, to wake when it is severed.
    /// (A plain waker slot: `Notify` costs more on every read, and every
    /// read of every connection pays it.)
    reader: RefCell<Option<std::task::Waker>>,
}

impl Severance {
    pub fn sever(&self) {
        self.severed.set(true);
        if let Some(waker) = self.reader.borrow_mut().take() {
            waker.wake();
        }
    }

    pub fn is_severed(&self) -> bool {
        self.severed.get()
    }

    fn register(&self, waker: &std::task::Waker) {
        let mut slot = self.reader.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset by the network",
    )
}

/// One end of a TCP connection, speaking HTTP/1.1 and recording every message.
pub struct Conn<S> {
    stream: S,
    /// Bytes read from the stream but not yet consumed by a message.
    buf: Vec<u8>,
    /// The connection's name in the trace, the same at both ends:
    /// `client-1:49153>server:80`.
    pub name: String,
    /// The direction of messages this end sends.
    outgoing: Dir,
    sent: u32,
    received: u32,
    trace: HostTrace,
    loss: Loss,
    /// Set once the network has "lost" a message: the connection is dead.
    broken: bool,
    /// While reading a streamed body: the splitter that finds its blocks.
    stream_blocks: crate::event_stream::BlockSplitter,
    severance: Rc<Severance>,
}

/// How the body after a response head ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 for 204, 304 and 1xx).
    Length(usize),
    /// No length: the body runs until the connection closes (event streams).
    UntilClose,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// `outgoing` is `Up` for the end that opened the connection.
    pub fn new(stream: S, name: String, outgoing: Dir, trace: HostTrace, loss: Loss) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::with_capacity(1024),
            name,
            outgoing,
            sent: 0,
            received: 0,
            trace,
            loss,
            broken: false,
            stream_blocks: Default::default(),
            severance: Rc::default(),
        }
    }

    /// Lets the network reset this connection through `severance`.
    pub fn with_severance(mut self, severance: Rc<Severance>) -> Conn<S> {
        self.severance = severance;
        self
    }

    fn incoming(&self) -> Dir {
        match self.outgoing {
            Dir::Up => Dir::Down,
            Dir::Down => Dir::Up,
        }
    }

    /// Writes one whole message and records it. If `network.loss` strikes, the
    /// message is recorded as lost, nothing is written, and the connection is
    /// dead from now on: the caller drops it, and the peer sees it close.
    pub async fn send(
        &mut self,
        bytes: &[u8],
        what: String,
        events: Option<u32>,
        retry: bool,
    ) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already broken",
            ));
        }
        if self.severance.is_severed() {
            return Err(reset_error());
        }
        self.sent += 1;
        let lost = self.loss.strikes();
        self.trace.record(Event::Send {
            conn: self.name.clone(),
            dir: self.outgoing,
            seq: self.sent,
            what,
            bytes: bytes.len() as u64,
            events,
            lost,
            retry,
        });
        if lost {
            self.broken = true;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "message lost: the network broke the connection",
            ));
        }
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    fn record_received(&mut self, what: String, bytes: usize, events: Option<u32>) {
        self.received += 1;
        self.trace.record(Event::Recv {
            conn: self.name.clone(),
            dir: self.incoming(),
            seq: self.received,
            what,
            bytes: bytes as u64,
            events,
        });
    }

    /// Reads more bytes into `buf`. `Ok(false)` is a clean end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 4096];
        let severance = &self.severance;
        let read = self.stream.read(&mut chunk);
        tokio::pin!(read);
        // A read that a reset by the network can interrupt.
        let n = std::future::poll_fn(|cx| {
            if severance.is_severed() {
                return std::task::Poll::Ready(Err(reset_error()));
            }
            severance.register(cx.waker());
            std::future::Future::poll(read.as_mut(), cx)
        })
        .await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Resolves when the peer closes the connection or it fails. Bytes that
    /// arrive meanwhile are kept for the next read, so nothing is lost.
    pub async fn peer_closed(&mut self) {
        while let Ok(true) = self.fill().await {
            if self.buf.len() > MAX_HEAD_BYTES + MAX_BODY_BYTES {
                return; // a peer flooding a held connection: treat as gone
            }
        }
    }

    /// Reads the next request. `Ok(None)` is the client closing the connection
    /// between requests, which is how keep-alive connections normally end.
    pub async fn read_request(&mut self) -> Result<Option<Request>, HttpError> {
        loop {
            if let Some((head_len, mut request, body_len)) = parse_request_head(&self.buf)? {
                let body = self.read_body(head_len, body_len).await?;
                request.body = body;
                let total = head_len + body_len;
                self.record_received(request.summary(), total, None);
                return Ok(Some(request));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::UnexpectedEof)
                };
            }
        }
    }

    /// Reads the next response, whole. `events` is filled in by the caller's
    /// `count_events` so the trace can tell empty answers from full ones.
    pub async fn read_response(
        &mut self,
        count_events: impl Fn(&Response) -> Option<u32>,
    ) -> Result<Response, HttpError> {
        loop {
            if let Some((head_len, mut response, body_len)) = parse_response_head(&self.buf)? {
                if (100..200).contains(&response.status) {
                    // An interim answer (RFC 9110 section 15.2): skip it, the
                    // real one follows.
                    self.buf.drain(..head_len);
                    continue;
                }
                let until_close = body_len == 0
                    && response.header("content-length").is_none()
                    && !(response.status == 204 || response.status == 304);
                if until_close {
                    // No length: the body runs to the end of the connection
                    // (RFC 9112 section 6.3, rule 8).
                    while self.fill().await? {
                        if self.buf.len() > head_len + MAX_BODY_BYTES {
                            return Err(HttpError::BodyTooLarge);
                        }
                    }
                    response.body = self.buf.split_off(head_len);
                    self.buf.clear();
                    let total = head_len + response.body.len();
                    let events = count_events(&response);
                    self.record_received(response.summary(), total, events);
                    return Ok(response);
                }
                response.body = self.read_body(head_len, body_len).await?;
                let events = count_events(&response);
                self.record_received(response.summary(), head_len + body_len, events);
                return Ok(response);
            }
            if !self.fill().await? {
                return Err(HttpError::UnexpectedEof);
            }
        }
    }

    /// Reads the start of a response: the whole response when it has a
    /// length (recorded as one message, as `read_response` does), or only the
    /// head of a stream, whose body then comes from `read_stream`.
    pub async fn read_response_start(
        &mut self,
        count_events: impl Fn(&Response) -> Option<u32>,
    ) -> Result<(Response, Framing), HttpError> {
        loop {
            if let Some((head_len, mut response, body_len)) = parse_response_head(&self.buf)? {
                if (100..200).contains(&response.status) {
                    self.buf.drain(..head_len); // interim answer: skip it
                    continue;
                }
                let streamed = body_len == 0
                    && response.header("content-length").is_none()
                    && !(response.status < 200 || response.status == 204 || response.status == 304);
                if streamed {
                    self.buf.drain(..head_len);
                    self.record_received(response.summary(), head_len, None);
                    self.stream_blocks = Default::default();
                    return Ok((response, Framing::UntilClose));
                }
                response.body = self.read_body(head_len, body_len).await?;
                let events = count_events(&response);
                self.record_received(response.summary(), head_len + body_len, events);
                return Ok((response, Framing::Length(body_len)));
            }
            if !self.fill().await? {
                return Err(HttpError::UnexpectedEof);
            }
        }
    }

    /// The next bytes of a streamed body (after `read_response_start`), and
    /// the blocks they completed, each recorded as one received message.
    /// `Ok(None)` when the body has ended (the server closed the stream).
    pub async fn read_stream(&mut self) -> io::Result<Option<(Vec<u8>, Vec<Vec<u8>>)>> {
        if self.buf.is_empty() && !self.fill().await? {
            return Ok(None);
        }
        let raw: Vec<u8> = std::mem::take(&mut self.buf);
        let blocks = self.stream_blocks.push(&raw);
        for block in &blocks {
            let (what, events) = crate::event_stream::block_summary(block);
            self.record_received(what, block.len(), events);
        }
        Ok(Some((raw, blocks)))
    }

    /// Writes one block of a stream (an event, a comment) as one message.
    pub async fn send_block(&mut self, block: &[u8]) -> io::Result<()> {
        let (what, events) = crate::event_stream::block_summary(block);
        self.send(block, what, events, false).await
    }

    /// Writes the head of a streamed response.
    pub async fn send_stream_head(&mut self, response: &Response) -> io::Result<()> {
        self.send(
            &response.stream_head_bytes(),
            response.summary(),
            None,
            false,
        )
        .await
    }

    /// Waits until `head_len + body_len` bytes are buffered, then takes them.
    async fn read_body(&mut self, head_len: usize, body_len: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < head_len + body_len {
            if !self.fill().await? {
                return Err(HttpError::UnexpectedEof);
            }
        }
        let body = self.buf[head_len..head_len + body_len].to_vec();
        self.buf.drain(..head_len + body_len);
        Ok(body)
    }

    pub async fn send_request(&mut self, request: &Request, retry: bool) -> io::Result<()> {
        self.send(&request.to_bytes(), request.summary(), None, retry)
            .await
    }

    pub async fn send_response(
        &mut self,
        response: &Response,
        events: Option<u32>,
    ) -> io::Result<()> {
        self.send(&response.to_bytes(), response.summary(), events, false)
            .await
    }

    /// Ends a connection whose peer sent something that is not HTTP: answers
    /// with the protocol's status when the peer is at fault (400, 431, 413,
    /// 501), then hangs up. A network failure gets no answer, only a record.
    pub async fn refuse(mut self, error: &HttpError) {
        if let Some(status) = error.status() {
            let _ = self
                .send_response(&Response::error(status, &error.to_string()), None)
                .await;
            return self.close(&format!("sent {status}")).await;
        }
        self.abandon(&error.to_string());
    }

    /// Closes this end and records why.
    pub async fn close(mut self, reason: &str) {
        // A failed shutdown means the peer is already gone: nothing to do.
        let _ = self.stream.shutdown().await;
        self.trace.record(Event::Close {
            conn: self.name.clone(),
            reason: reason.to_string(),
        });
    }

    /// Records the close of a connection that is being dropped without a
    /// shutdown (it failed, or the network broke it).
    pub fn abandon(self, reason: &str) {
        self.trace.record(Event::Close {
            conn: self.name.clone(),
            reason: reason.to_string(),
        });
    }
}

fn header_value(h: &httparse::Header) -> Result<String, HttpError> {
    std::str::from_utf8(h.value)
        .map(|v| v.trim().to_string())
        .map_err(|_| HttpError::Malformed(format!("header {} is not valid text", h.name)))
}

/// The body length a head declares. No `Content-Length` means no body (we
/// never send requests with chunked bodies, and refuse them with `501`).
fn body_length(headers: &[(String, String)]) -> Result<usize, HttpError> {
    if let Some(te) = find_header(headers, "transfer-encoding") {
        if find_header(headers, "content-length").is_some() {
            // RFC 9112 section 6.1: both at once is how request smuggling starts.
            return Err(HttpError::Malformed(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        return Err(HttpError::Unsupported(format!("Transfer-Encoding: {te}")));
    }
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    let Some(first) = lengths.first() else {
        return Ok(0);
    };
    if lengths.iter().any(|l| l != first) {
        return Err(HttpError::Malformed(
            "conflicting Content-Length headers".into(),
        ));
    }
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::Malformed(format!(
            "Content-Length {first:?} is not a number"
        )));
    }
    let n: usize = first.parse().map_err(|_| HttpError::BodyTooLarge)?;
    if n > MAX_BODY_BYTES {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(n)
}

/// Parses a request head from the start of `buf`: `Ok(None)` until the blank
/// line has arrived, then the head's length, the request and the body length.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(usize, Request, usize)>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let status = match parsed.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() > MAX_HEAD_BYTES {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HttpError::HeadTooLarge);
    }
    // httparse fills every field of a complete head.
    let method = parsed.method.unwrap_or_default().to_string();
    let mut target = parsed.path.unwrap_or_default().to_string();
    let minor_version = parsed.version.unwrap_or(1);
    let headers = parsed
        .headers
        .iter()
        .map(|h| Ok((h.name.to_string(), header_value(h)?)))
        .collect::<Result<Vec<_>, HttpError>>()?;
    // RFC 9112 section 3.2.2: a server MUST accept the absolute form
    // (`http://server/updates`, what clients send to proxies); we serve its path.
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = match rest.find('/') {
            Some(slash) => rest[slash..].to_string(),
            None => "/".to_string(),
        };
    }
    if !target.starts_with('/') {
        return Err(HttpError::Malformed(format!(
            "request target {target:?} is not a path"
        )));
    }
    // RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request
    // without a Host header, and to any request with more than one.
    let hosts = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 || (minor_version == 1 && hosts != 1) {
        return Err(HttpError::Malformed(
            "a request needs exactly one Host header (HTTP/1.0: at most one)".into(),
        ));
    }
    // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means
    // its framing is faulty.
    if minor_version == 0 && find_header(&headers, "transfer-encoding").is_some() {
        return Err(HttpError::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request".into(),
        ));
    }
    let body_len = body_length(&headers)?;
    Ok(Some((
        head_len,
        Request {
            method,
            target,
            minor_version,
            headers,
            body: Vec::new(),
        },
        body_len,
    )))
}

/// Parses a response head, like `parse_request_head`.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, Response, usize)>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let status = match parsed.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() > MAX_HEAD_BYTES {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        }
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HttpError::HeadTooLarge);
    }
    let headers = parsed
        .headers
        .iter()
        .map(|h| Ok((h.name.to_string(), header_value(h)?)))
        .collect::<Result<Vec<_>, HttpError>>()?;
    let status = parsed.code.unwrap_or(0);
    // 1xx, 204 and 304 never have a body (RFC 9112 section 6.3).
    let body_len = if status < 200 || status == 204 || status == 304 {
        0
    } else {
        body_length(&headers)?
    };
    Ok(Some((
        head_len,
        Response {
            status,
            reason: parsed.reason.unwrap_or_default().to_string(),
            headers,
            body: Vec::new(),
        },
        body_len,
    )))
}
