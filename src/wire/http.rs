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
}

impl HttpError {
    /// The status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::Unsupported(_) => 501,
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
        }
    }
}

impl std::error::Error for HttpError {}

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

/// How the body after a response head ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 for 204, 304 and 1xx).
    Length(usize),
    /// No length: the body runs until the connection closes (RFC 9112
    /// section 6.3, rule 8): how event streams are sent here.
    UntilClose,
}

/// A whole request (head and body) at the start of `buf`: `Ok(None)` until
/// all of it has arrived, then the request and how many bytes it took.
pub fn decode_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    let Some((head_len, mut request, body_len)) = parse_request_head(buf)? else {
        return Ok(None);
    };
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    request.body = buf[head_len..head_len + body_len].to_vec();
    Ok(Some((request, head_len + body_len)))
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
    let Some((head_len, response, body_len)) = parse_response_head(buf)? else {
        return Ok(None);
    };
    if (100..200).contains(&response.status) {
        return Ok(Some(ResponseStart::Interim(head_len)));
    }
    let until_close = body_len == 0
        && response.header("content-length").is_none()
        && !(response.status == 204 || response.status == 304);
    let framing = if until_close {
        Framing::UntilClose
    } else {
        Framing::Length(body_len)
    };
    Ok(Some(ResponseStart::Head {
        response,
        head_len,
        framing,
    }))
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

    #[test]
    fn bad_heads_map_to_the_status_a_server_answers() {
        let err = |bytes: &[u8]| decode_request(bytes).unwrap_err().status();
        assert_eq!(err(b"GET /\r\n\r\n"), 400);
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), 400, "no Host");
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 99999999999\r\n\r\n"),
            413
        );
    }
}
