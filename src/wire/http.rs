//! HTTP/1.1 messages as bytes: just enough of RFC 9112 for the lessons,
//! written out so that every byte a mechanism sends is visible. Pure: bytes
//! in, values out; the traced connection (`world::conn`) does the I/O.
//!
//! A poll and its answer, exactly as they cross the network (the answer is
//! pinned by a wire test in `tests/http_wire.rs`):
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
//! Content-Length: 26\r\n
//! \r\n
//! {"events":[],"more":false}
//! ```
//!
//! The head is parsed with `httparse` (plumbing); bodies are framed by
//! `Content-Length`, or run until the connection closes. What a peer sends can
//! never panic this code: a malformed head is a `400`, an oversized one a
//! `431`, an oversized body a `413`, and a transfer coding we do not speak a
//! `501`.

use std::fmt;

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

    /// The target's path and query: the target itself in origin form
    /// (`/updates?after=3`), what follows the authority in absolute form
    /// (`http://server/updates?after=3`, as clients send to proxies).
    pub fn path_and_query(&self) -> &str {
        let Some(rest) = self
            .target
            .strip_prefix("http://")
            .or_else(|| self.target.strip_prefix("https://"))
        else {
            return &self.target;
        };
        match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => &rest[i..],
            _ => "/",
        }
    }

    pub fn path(&self) -> &str {
        self.path_and_query().split('?').next().unwrap_or("")
    }

    /// The value of query parameter `name`, undecoded (our values are numbers).
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.path_and_query().split_once('?')?;
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
        let start = format!(
            "{} {} HTTP/1.{}",
            self.method, self.target, self.minor_version
        );
        let length =
            (!self.body.is_empty()).then(|| format!("Content-Length: {}", self.body.len()));
        let mut bytes = head(&start, &self.headers, length);
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

    /// The head of a response whose body is a stream: no `Content-Length`
    /// but `Transfer-Encoding: chunked`, as Node, Go and hyper send a body
    /// whose length they do not know. The body follows in later writes, one
    /// [`chunk`] each, and ends with [`LAST_CHUNK`]: an explicit end, so a
    /// stream cut short is never mistaken for a finished one.
    pub fn stream_head_bytes(&self) -> Vec<u8> {
        let start = format!("HTTP/1.1 {} {}", self.status, self.reason);
        head(
            &start,
            &self.headers,
            Some("Transfer-Encoding: chunked".into()),
        )
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("HTTP/1.1 {} {}", self.status, self.reason);
        // RFC 9110 section 8.6: no Content-Length on 1xx and 204 answers.
        let length = (!(self.status < 200 || self.status == 204))
            .then(|| format!("Content-Length: {}", self.body.len()));
        let mut bytes = head(&start, &self.headers, length);
        bytes.extend_from_slice(&self.body);
        bytes
    }

    pub fn summary(&self) -> String {
        format!("{} {}", self.status, self.reason)
    }
}

/// A message head: the start line, the headers, the framing header we write
/// (if any), the blank line. Framing headers are ours to write: a copied
/// message (a proxy's) must not carry the original's as well.
fn head(start: &str, headers: &[(String, String)], framing: Option<String>) -> Vec<u8> {
    let mut out = format!("{start}\r\n");
    for (n, v) in headers.iter().filter(|(n, _)| !is_framing(n)) {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(framing) = framing {
        out.push_str(&framing);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
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
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
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

/// Why bytes are not an HTTP message we accept: the peer's fault, each with
/// the status a server answers it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP/1.1 as RFC 9112 writes it: answer `400`.
    Malformed(String),
    /// The head is over `MAX_HEAD_BYTES` or has over `MAX_HEADERS` fields: `431`.
    HeadTooLarge,
    /// The declared body is over `MAX_BODY_BYTES`: `413`.
    BodyTooLarge,
    /// A `Transfer-Encoding` we do not implement: `501`.
    Unsupported(String),
    /// An HTTP version other than 1.x: `505`.
    VersionNotSupported,
}

impl HttpError {
    /// The status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::Unsupported(_) => 501,
            HttpError::VersionNotSupported => 505,
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
            HttpError::VersionNotSupported => write!(f, "HTTP version not supported"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A header value as text. RFC 9110 section 5.5 allows obs-text (bytes
/// 0x80-0xFF) in values: they are kept, read as UTF-8 when they are UTF-8 and
/// as Latin-1 otherwise (a byte per character, as browsers' `ByteString`).
fn header_value(h: &httparse::Header) -> String {
    match std::str::from_utf8(h.value) {
        Ok(text) => text.trim().to_string(),
        Err(_) => h
            .value
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

/// What httparse's complaint means for the answer: a version we do not
/// speak is `505`, anything else not HTTP/1.1 as RFC 9112 writes it `400`.
fn parse_error(e: httparse::Error, buf: &[u8]) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::HeadTooLarge,
        httparse::Error::Version if names_another_version(buf) => HttpError::VersionNotSupported,
        e => HttpError::Malformed(e.to_string()),
    }
}

/// Whether the first line names a well-formed HTTP version other than 1.x
/// (`HTTP/2.0`, `HTTP/3.0`): RFC 9110 section 15.6.6 answers it with `505`.
fn names_another_version(buf: &[u8]) -> bool {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let line = &buf[..line_end];
    let version = if line.starts_with(b"HTTP/") {
        line.split(|&b| b == b' ').next().unwrap_or(b"")
    } else {
        line.rsplit(|&b| b == b' ').next().unwrap_or(b"")
    };
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit() && *major != b'1')
}

/// The codings named by every `Transfer-Encoding` field, in order, lowercase.
fn transfer_codings(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// How a message's body is framed, from its head (RFC 9112 section 6.3).
/// `is_request`: requests never run until the connection closes.
fn body_framing(headers: &[(String, String)], is_request: bool) -> Result<Framing, HttpError> {
    let codings = transfer_codings(headers);
    let has_te = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if has_te {
        if find_header(headers, "content-length").is_some() {
            // Section 6.1: both at once is how request smuggling starts; a
            // server ought to treat it as an error, and we always do.
            return Err(HttpError::Malformed(
                "both Transfer-Encoding and Content-Length".into(),
            ));
        }
        let chunked = codings.iter().filter(|c| *c == "chunked").count();
        let last_is_chunked = codings.last().is_some_and(|c| c == "chunked");
        if chunked > 1 {
            // Section 6.1: a sender MUST NOT apply chunked more than once.
            return Err(HttpError::Malformed(
                "chunked applied more than once".into(),
            ));
        }
        if !last_is_chunked {
            if is_request {
                // Rule 4 of section 6.3: the length of such a request
                // cannot be known: 400.
                return Err(HttpError::Malformed(
                    "Transfer-Encoding of a request does not end with chunked".into(),
                ));
            }
            // A response without chunked last runs until the server closes.
            return Ok(Framing::UntilClose);
        }
        if let Some(other) = codings.iter().find(|c| *c != "chunked") {
            // gzip, deflate, ... under the chunks: we do not decode them.
            return Err(HttpError::Unsupported(format!(
                "Transfer-Encoding: {other}"
            )));
        }
        return Ok(Framing::Chunked);
    }
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    let Some(first) = lengths.first() else {
        return Ok(if is_request {
            Framing::Length(0)
        } else {
            Framing::UntilClose
        });
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
    Ok(Framing::Length(n))
}

/// Runs httparse over `buf`: `Ok(None)` until the head's blank line has
/// arrived (or an error once the head is too large to be ours).
fn head_status(
    status: Result<httparse::Status<usize>, httparse::Error>,
    buf: &[u8],
) -> Result<Option<usize>, HttpError> {
    match status.map_err(|e| parse_error(e, buf))? {
        httparse::Status::Complete(n) if n > MAX_HEAD_BYTES => Err(HttpError::HeadTooLarge),
        httparse::Status::Complete(n) => Ok(Some(n)),
        httparse::Status::Partial if buf.len() > MAX_HEAD_BYTES => Err(HttpError::HeadTooLarge),
        httparse::Status::Partial => Ok(None),
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` until the blank
/// line has arrived, then the head's length, the request and how its body is
/// framed.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(usize, Request, Framing)>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let status = parsed.parse(buf);
    let Some(head_len) = head_status(status, buf)? else {
        return Ok(None);
    };
    // httparse fills every field of a complete head.
    let method = parsed.method.unwrap_or_default().to_string();
    let target = parsed.path.unwrap_or_default().to_string();
    let minor_version = parsed.version.unwrap_or(1);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_string(), header_value(h)))
        .collect();
    // RFC 9112 section 3.2: origin form (`/updates?after=3`), absolute form
    // (`http://server/updates`, what clients send to proxies, which a server
    // MUST accept), authority form for CONNECT, `*` for OPTIONS.
    let acceptable = target.starts_with('/')
        || target.starts_with("http://")
        || target.starts_with("https://")
        || (method == "OPTIONS" && target == "*")
        || (method == "CONNECT" && !target.contains('/'));
    if !acceptable {
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
    let framing = body_framing(&headers, true)?;
    Ok(Some((
        head_len,
        Request {
            method,
            target,
            minor_version,
            headers,
            body: Vec::new(),
        },
        framing,
    )))
}

/// Parses a response head, like `parse_request_head`.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, Response, Framing)>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let status = parsed.parse(buf);
    let Some(head_len) = head_status(status, buf)? else {
        return Ok(None);
    };
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_string(), header_value(h)))
        .collect();
    let status = parsed.code.unwrap_or(0);
    // 1xx, 204 and 304 never have a body (RFC 9112 section 6.3, rule 1).
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        body_framing(&headers, false)?
    };
    Ok(Some((
        head_len,
        Response {
            status,
            reason: parsed.reason.unwrap_or_default().to_string(),
            headers,
            body: Vec::new(),
        },
        framing,
    )))
}

/// How a message's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 for 204, 304, 1xx and requests without one).
    Length(usize),
    /// Chunked transfer coding (RFC 9112 section 7.1): a series of
    /// `<hex size>\r\n<data>\r\n`, closed by `0\r\n\r\n`. The end of the
    /// body is explicit, so a stream cut short is never taken for a whole one.
    Chunked,
    /// A response with neither: the body runs until the server closes the
    /// connection (RFC 9112 section 6.3, rule 8).
    UntilClose,
}

/// One chunk of a chunked body, as it goes on the wire.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:X}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The chunk that ends a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Longest chunk-size line (size, extensions, CRLF) or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Decodes a chunked body as its bytes arrive: a pure state machine (feed
/// it any split of the bytes, get the same data). Chunk extensions are
/// ignored, trailer fields read and kept, as RFC 9112 section 7.1 asks of a
/// recipient.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// A size or trailer line in progress.
    line: Vec<u8>,
    /// Bytes of body data so far.
    total: usize,
    /// Trailer fields, once read.
    pub trailers: Vec<(String, String)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading `<hex size>[;ext]\r\n`.
    #[default]
    Size,
    /// Reading this many bytes of data.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: reading trailer lines until an empty one.
    Trailer,
    Done,
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Feeds bytes; returns the body data they carried and how many bytes
    /// were used (fewer than given once the body is done: the rest belongs
    /// to the next message).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut data = Vec::new();
        let mut i = 0;
        while i < bytes.len() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Data(left) => {
                    let n = left.min(bytes.len() - i);
                    data.extend_from_slice(&bytes[i..i + n]);
                    i += n;
                    self.state = if n == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let b = bytes[i];
                    i += 1;
                    self.line.push(b);
                    if self.line.len() > MAX_CHUNK_LINE {
                        return Err(HttpError::Malformed("chunk line too long".into()));
                    }
                    if b != b'\n' {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    // Lines end in CRLF; a bare LF is tolerated (section
                    // 2.2 lets a recipient accept it), a bare CR is not.
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.contains(&b'\r') {
                        return Err(HttpError::Malformed("bare CR in chunked body".into()));
                    }
                    self.end_of_line(line)?;
                }
                ChunkState::Done => {}
            }
        }
        Ok((data, i))
    }

    fn end_of_line(&mut self, line: &[u8]) -> Result<(), HttpError> {
        match self.state {
            ChunkState::Size => {
                let size = chunk_size(line)?;
                self.total = self.total.saturating_add(size);
                if self.total > MAX_BODY_BYTES {
                    return Err(HttpError::BodyTooLarge);
                }
                self.state = if size == 0 {
                    ChunkState::Trailer
                } else {
                    ChunkState::Data(size)
                };
            }
            ChunkState::DataEnd => {
                if !line.is_empty() {
                    return Err(HttpError::Malformed(
                        "chunk data longer than its size".into(),
                    ));
                }
                self.state = ChunkState::Size;
            }
            ChunkState::Trailer => {
                if line.is_empty() {
                    self.state = ChunkState::Done;
                } else {
                    let text = String::from_utf8_lossy(line);
                    let (name, value) = text.split_once(':').ok_or_else(|| {
                        HttpError::Malformed(format!("trailer line {text:?} is not a field"))
                    })?;
                    if name.is_empty() || name.contains([' ', '\t']) {
                        return Err(HttpError::Malformed(format!(
                            "bad trailer field name {name:?}"
                        )));
                    }
                    self.trailers
                        .push((name.to_string(), value.trim().to_string()));
                }
            }
            ChunkState::Data(_) | ChunkState::Done => {}
        }
        Ok(())
    }
}

/// `1a;name=value` -> 26: hex digits, then optional extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    if digits.is_empty() {
        return Err(HttpError::Malformed(format!(
            "chunk size {:?} is not a hex number",
            String::from_utf8_lossy(line)
        )));
    }
    // After the size: nothing, or extensions `;name[=value]` (whitespace
    // before `;` is tolerated, as RFC 9112 section 7.1.1's BWS).
    let rest_trimmed: Vec<u8> = rest
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b'\t')
        .collect();
    if !rest_trimmed.is_empty() && rest_trimmed[0] != b';' {
        return Err(HttpError::Malformed(format!(
            "chunk size {:?} is not a hex number",
            String::from_utf8_lossy(line)
        )));
    }
    let digits = std::str::from_utf8(digits).expect("hex digits are ASCII");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 15 {
        return Err(HttpError::Malformed("chunk size overflows".into()));
    }
    let size = usize::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
        .map_err(|_| HttpError::Malformed("chunk size overflows".into()))?;
    if size > MAX_BODY_BYTES {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(size)
}

/// A whole request (head and body) at the start of `buf`: `Ok(None)` until
/// all of it has arrived, then the request and how many bytes it took.
pub fn decode_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let Some((head_len, mut request, framing)) = parse_request_head(buf)? else {
        return Ok(None);
    };
    match body_of(&buf[head_len..], framing)? {
        None => Ok(None),
        Some((body, used)) => {
            request.body = body;
            Ok(Some((request, head_len + used)))
        }
    }
}

/// The whole body at the start of `buf`, framed as `framing` says, and the
/// bytes it took; `Ok(None)` until all of it is there. (A body that runs
/// until close is never whole before the close: the caller decides.)
pub fn body_of(buf: &[u8], framing: Framing) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    match framing {
        Framing::Length(n) if buf.len() >= n => Ok(Some((buf[..n].to_vec(), n))),
        Framing::Length(_) | Framing::UntilClose => Ok(None),
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let (data, used) = decoder.push(buf)?;
            Ok(decoder.is_done().then_some((data, used)))
        }
    }
}

/// What starts at the front of a buffer of response bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseStart {
    /// An interim `1xx` answer of this many bytes (RFC 9110 section 15.2):
    /// skip it, the real one follows.
    Interim(usize),
    /// The head of the final answer, its length, and how its body is framed.
    Head {
        response: Response,
        head_len: usize,
        framing: Framing,
    },
}

/// The next response head at the start of `buf`, `Ok(None)` until its blank
/// line has arrived.
pub fn decode_response_start(buf: &[u8]) -> Result<Option<ResponseStart>, HttpError> {
    let Some((head_len, response, framing)) = parse_response_head(buf)? else {
        return Ok(None);
    };
    // 101 is the last HTTP on the connection, not an interim answer: the
    // protocol it names (WebSocket) follows at once (RFC 9110 section
    // 15.2.2).
    if (100..200).contains(&response.status) && response.status != 101 {
        return Ok(Some(ResponseStart::Interim(head_len)));
    }
    Ok(Some(ResponseStart::Head {
        response,
        head_len,
        framing,
    }))
}

/// One message as `pushpull decode http` prints it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Decoded {
    Request {
        method: String,
        target: String,
        version: String,
        headers: Vec<(String, String)>,
        body_length: usize,
    },
    Response {
        status: u16,
        reason: String,
        version: String,
        headers: Vec<(String, String)>,
        body_length: usize,
    },
    /// Bytes a server would refuse (for requests), or a client or proxy
    /// would (for responses: a gateway answers `502`), and why. Decoding
    /// stops here.
    Error { error: String, status: u16 },
    /// The input ended part-way through a message.
    Incomplete { incomplete: bool },
}

/// Every message in `bytes` (several, when pipelined), as a server reads
/// requests or, with `responses`, as a client reads answers. Stops at the
/// first error or at an incomplete message. A response that runs until the
/// connection closes takes the rest of the input (its end is the close).
pub fn decode_messages(bytes: &[u8], responses: bool) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut rest = bytes;
    // RFC 9112 section 2.2: empty lines before a request line are ignored.
    while !rest.is_empty() {
        let next = if responses {
            decode_one_response(rest)
        } else {
            decode_one_request(rest)
        };
        match next {
            Ok(Some((message, used))) => {
                // After `101 Switching Protocols` the bytes are another
                // protocol's (RFC 9110 section 15.2.2): not HTTP to decode.
                let switched = matches!(message, Decoded::Response { status: 101, .. });
                out.push(message);
                rest = &rest[used..];
                if switched {
                    break;
                }
            }
            Ok(None) => {
                out.push(Decoded::Incomplete { incomplete: true });
                break;
            }
            Err(e) => {
                out.push(Decoded::Error {
                    error: e.to_string(),
                    status: if responses { 502 } else { e.status() },
                });
                break;
            }
        }
    }
    out
}

fn version(minor: u8) -> String {
    format!("HTTP/1.{minor}")
}

fn decode_one_request(buf: &[u8]) -> Result<Option<(Decoded, usize)>, HttpError> {
    let Some((request, used)) = decode_request(buf)? else {
        return Ok(None);
    };
    Ok(Some((
        Decoded::Request {
            method: request.method,
            target: request.target,
            version: version(request.minor_version),
            headers: request.headers,
            body_length: request.body.len(),
        },
        used,
    )))
}

fn decode_one_response(buf: &[u8]) -> Result<Option<(Decoded, usize)>, HttpError> {
    let Some((head_len, response, framing)) = parse_response_head(buf)? else {
        return Ok(None);
    };
    let minor = response_minor_version(buf);
    let (body_length, used) = match framing {
        Framing::UntilClose => (buf.len() - head_len, buf.len()),
        framing => match body_of(&buf[head_len..], framing)? {
            Some((body, used)) => (body.len(), head_len + used),
            None => return Ok(None),
        },
    };
    Ok(Some((
        Decoded::Response {
            status: response.status,
            reason: response.reason,
            version: version(minor),
            headers: response.headers,
            body_length,
        },
        used,
    )))
}

/// The minor version of a response's status line (`HTTP/1.0 200 OK` -> 0).
fn response_minor_version(buf: &[u8]) -> u8 {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let _ = parsed.parse(buf);
    parsed.version.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_whole_only_with_its_body() {
        let bytes = b"POST /x HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(decode_request(bytes), Ok(None));
        let mut whole = bytes.to_vec();
        whole.extend_from_slice(b"cGET");
        let (request, used) = decode_request(&whole).unwrap().unwrap();
        assert_eq!(
            (request.method.as_str(), request.body.as_slice()),
            ("POST", &b"abc"[..])
        );
        assert_eq!(&whole[used..], b"GET");
    }

    #[test]
    fn switching_protocols_is_the_last_http_on_the_connection() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
        match decode_response_start(bytes).unwrap().unwrap() {
            ResponseStart::Head {
                response, head_len, ..
            } => {
                assert_eq!(response.status, 101);
                assert_eq!(&bytes[head_len..], b"\x81\x02hi");
            }
            other => panic!("101 is not interim: {other:?}"),
        }
        // Decoding stops after it: the frame that follows is not HTTP.
        let decoded = decode_messages(bytes, true);
        assert_eq!(decoded.len(), 1, "{decoded:?}");
    }

    #[test]
    fn response_framing_follows_rfc_9112_section_6_3() {
        let start = |bytes: &[u8]| decode_response_start(bytes).unwrap().unwrap();
        assert_eq!(
            start(b"HTTP/1.1 100 Continue\r\n\r\n"),
            ResponseStart::Interim(25)
        );
        let framing = |bytes: &[u8]| match start(bytes) {
            ResponseStart::Head { framing, .. } => framing,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Framing::Length(0)
        );
        assert_eq!(
            framing(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
            Framing::Length(0)
        );
    }

    /// Decodes `body` fed in pieces of `step` bytes.
    fn dechunk(body: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), HttpError> {
        let mut decoder = ChunkedDecoder::new();
        let mut data = Vec::new();
        let mut used = 0;
        for piece in body.chunks(step.max(1)) {
            let (d, n) = decoder.push(piece)?;
            data.extend(d);
            used += n;
            if decoder.is_done() {
                break;
            }
        }
        Ok((data, decoder.is_done(), used))
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let body = b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nGET";
        for step in 1..body.len() {
            let (data, done, used) = dechunk(body, step).unwrap();
            assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert!(done);
            assert_eq!(&body[used..], b"GET", "step {step}");
        }
        let mut decoder = ChunkedDecoder::new();
        decoder.push(body).unwrap();
        assert_eq!(decoder.trailers, vec![("Expires".into(), "never".into())]);
    }

    #[test]
    fn our_chunks_decode_to_what_was_sent() {
        let mut wire = chunk(b"id: 1\ndata: a\n\n");
        wire.extend(chunk(&[b'x'; 300]));
        wire.extend_from_slice(LAST_CHUNK);
        assert!(wire.starts_with(b"F\r\nid: 1"));
        let (data, done, used) = dechunk(&wire, 7).unwrap();
        assert!(done && used == wire.len());
        assert_eq!(data.len(), 15 + 300);
    }

    #[test]
    fn bad_chunks_are_refused() {
        let status = |body: &[u8]| dechunk(body, 3).unwrap_err().status();
        assert_eq!(status(b"zz\r\n"), 400, "not hex");
        assert_eq!(status(b"\r\n"), 400, "empty size");
        assert_eq!(status(b"-1\r\n"), 400, "negative");
        assert_eq!(status(b"0x10\r\n"), 400, "0x prefix");
        assert_eq!(status(b"1 0\r\n"), 400, "space inside the size");
        assert_eq!(status(b"10000000000000000\r\n"), 400, "overflow");
        assert_eq!(status(b"FFFFFFFF\r\n"), 413, "over the body limit");
        assert_eq!(status(b"3\r\nabcd\r\n"), 400, "data longer than its size");
        assert_eq!(status(b"3\rabc\r\n"), 400, "bare CR");
        assert_eq!(status(b"0\r\nno colon\r\n\r\n"), 400, "bad trailer");
        // Leading zeros and whitespace before extensions are allowed.
        assert_eq!(
            dechunk(b"0003 ;x\r\nabc\r\n0\r\n\r\n", 2).unwrap().0,
            b"abc"
        );
    }

    #[test]
    fn a_chunked_request_is_whole_only_at_its_last_chunk() {
        let head = b"POST /x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(b"3\r\nabc\r\n");
        assert_eq!(decode_request(&bytes), Ok(None));
        bytes.extend_from_slice(b"0\r\n\r\n");
        let (request, used) = decode_request(&bytes).unwrap().unwrap();
        assert_eq!((request.body.as_slice(), used), (&b"abc"[..], bytes.len()));
    }

    #[test]
    fn transfer_codings_follow_rfc_9112_section_6() {
        let request = |te: &str| {
            let text =
                format!("POST /x HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
            decode_request(text.as_bytes())
                .map(|r| r.is_some())
                .map_err(|e| e.status())
        };
        assert_eq!(request("chunked"), Ok(true));
        assert_eq!(request("CHUNKED"), Ok(true));
        assert_eq!(request("gzip, chunked"), Err(501));
        assert_eq!(request("chunked, gzip"), Err(400));
        assert_eq!(request("chunked, chunked"), Err(400));
        let response = |te: &str| match decode_response_start(
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n").as_bytes(),
        ) {
            Ok(Some(ResponseStart::Head { framing, .. })) => framing,
            other => panic!("{other:?}"),
        };
        assert_eq!(response("chunked"), Framing::Chunked);
        assert_eq!(response("gzip"), Framing::UntilClose);
    }

    #[test]
    fn obs_text_in_a_value_is_kept_and_other_versions_get_505() {
        let (request, _) = decode_request(b"GET / HTTP/1.1\r\nHost: s\r\nX-Name: caf\xe9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(request.header("x-name"), Some("caf\u{e9}"));
        let status = |bytes: &[u8]| decode_request(bytes).unwrap_err().status();
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: s\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTX/1.1\r\nHost: s\r\n\r\n"), 400);
    }

    #[test]
    fn absolute_form_targets_are_kept_and_served_by_path() {
        let (request, _) =
            decode_request(b"GET http://server/updates?after=3 HTTP/1.1\r\nHost: server\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(request.target, "http://server/updates?after=3");
        assert_eq!(
            (request.path(), request.query("after")),
            ("/updates", Some("3"))
        );
    }

    #[test]
    fn decode_reads_pipelined_messages_and_stops_at_the_first_problem() {
        let json = |bytes: &[u8], responses: bool| -> Vec<String> {
            decode_messages(bytes, responses)
                .iter()
                .map(|d| serde_json::to_string(d).unwrap())
                .collect()
        };
        assert_eq!(
            json(b"GET /a HTTP/1.1\r\nHost: s\r\n\r\nPOST /b HTTP/1.1\r\nHost: s\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\nHo", false),
            [
                r#"{"method":"GET","target":"/a","version":"HTTP/1.1","headers":[["Host","s"]],"body_length":0}"#,
                r#"{"method":"POST","target":"/b","version":"HTTP/1.1","headers":[["Host","s"],["Content-Length","2"]],"body_length":2}"#,
                r#"{"incomplete":true}"#,
            ]
        );
        assert_eq!(
            json(b"GET / HTTP/1.1\r\n\r\n", false),
            [
                r#"{"error":"malformed message: a request needs exactly one Host header (HTTP/1.0: at most one)","status":400}"#
            ]
        );
        assert_eq!(
            json(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nrest", true),
            [
                r#"{"status":100,"reason":"Continue","version":"HTTP/1.1","headers":[],"body_length":0}"#,
                r#"{"status":200,"reason":"OK","version":"HTTP/1.0","headers":[["Transfer-Encoding","chunked"]],"body_length":2}"#,
                r#"{"status":200,"reason":"OK","version":"HTTP/1.1","headers":[],"body_length":4}"#,
            ]
        );
    }

    #[test]
    fn bad_heads_map_to_the_status_a_server_answers() {
        let err = |bytes: &[u8]| decode_request(bytes).unwrap_err().status();
        assert_eq!(err(b"GET /\r\n\r\n"), 400);
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), 400, "no Host");
        // RFC 9112 section 6.3: a request whose codings do not end with
        // chunked has no knowable length: 400, not 501.
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 99999999999\r\n\r\n"),
            413
        );
    }
}
