//! The WebSocket protocol (RFC 6455) as bytes: the opening handshake, frames,
//! messages put back together from fragments, and every rule whose breach
//! fails the connection. No I/O: the mechanism (`mechanisms::websocket`) reads
//! bytes from a connection and hands them here.
//!
//! The handshake is an HTTP/1.1 request that asks to stop being HTTP
//! (section 4; the key and answer are the RFC's own example, section 1.3):
//!
//! ```text
//! GET /chat HTTP/1.1\r\n
//! Host: server.example.com\r\n
//! Upgrade: websocket\r\n
//! Connection: Upgrade\r\n
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n
//! Sec-WebSocket-Version: 13\r\n
//! \r\n
//!
//! HTTP/1.1 101 Switching Protocols\r\n
//! Upgrade: websocket\r\n
//! Connection: Upgrade\r\n
//! Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n
//! \r\n
//! ```
//!
//! From then on both sides send frames (section 5.2). A masked text frame
//! "Hello" from a client, seven bytes of header and mask for five of text:
//!
//! ```text
//! 81                FIN=1, RSV=000, opcode 1 (text)
//! 85                MASK=1, length 5
//! 37 fa 21 3d       the masking key
//! 7f 9f 4d 51 58    "Hello", each byte XORed with the key's bytes in turn
//! ```
//!
//! `pushpull decode ws` prints any such bytes frame by frame.

use crate::wire::http::{Request, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key (section 1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Control frames carry at most this much (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// The largest message a reader accepts unless told otherwise: 16 MiB, the
/// size of the largest messages in the Autobahn suite's limits cases.
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Close codes we send (section 7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Reported (never sent) when a close frame had no code.
    pub const NO_STATUS: u16 = 1005;
    /// Reported (never sent) when the connection ended without a close frame.
    pub const ABNORMAL: u16 = 1006;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

// ---------------------------------------------------------------------------
// The opening handshake (section 4)
// ---------------------------------------------------------------------------

/// `Sec-WebSocket-Key`: 16 random bytes (a nonce), base64: 24 characters.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)). It proves the
/// server read this handshake (a cache cannot replay an old answer) and
/// speaks WebSocket (no plain HTTP server computes it by accident).
pub fn accept_for(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// The client's opening request for `target` on `host`.
pub fn handshake_request(target: &str, host: &str, key: &str) -> Request {
    let mut request = Request::get(target, host);
    request.headers.extend([
        ("Upgrade".into(), "websocket".into()),
        ("Connection".into(), "Upgrade".into()),
        ("Sec-WebSocket-Key".into(), key.into()),
        ("Sec-WebSocket-Version".into(), "13".into()),
    ]);
    request
}

/// Whether a comma-separated header value holds `token` (case-insensitive):
/// `Connection: keep-alive, Upgrade` asks for an upgrade (Firefox sends that).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Why a server turns an opening handshake down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a valid WebSocket handshake: `400 Bad Request`.
    BadRequest(String),
    /// A version other than 13: `426 Upgrade Required` with
    /// `Sec-WebSocket-Version: 13`, so the client can try again with it.
    UnsupportedVersion(String),
}

impl Refusal {
    /// The answer to send.
    pub fn response(&self) -> Response {
        match self {
            Refusal::BadRequest(why) => Response::error(400, why),
            Refusal::UnsupportedVersion(why) => {
                let mut r = Response::error(426, why);
                r.headers
                    .push(("Sec-WebSocket-Version".into(), "13".into()));
                r
            }
        }
    }
}

/// Checks an opening handshake as a server must (section 4.2.1) and returns
/// the `Sec-WebSocket-Accept` value to answer with.
pub fn check_request(request: &Request) -> Result<String, Refusal> {
    let bad = |why: &str| Err(Refusal::BadRequest(why.to_string()));
    if request.method != "GET" {
        return bad("a WebSocket handshake is a GET");
    }
    if request.minor_version < 1 {
        return bad("a WebSocket handshake needs HTTP/1.1");
    }
    if request.header("host").is_none() {
        return bad("no Host header");
    }
    if !has_token(request.header("upgrade"), "websocket") {
        return bad("no `Upgrade: websocket` header");
    }
    if !has_token(request.header("connection"), "upgrade") {
        return bad("no `Upgrade` token in the Connection header");
    }
    match request.header("sec-websocket-version").map(str::trim) {
        Some("13") => {}
        Some(other) => {
            return Err(Refusal::UnsupportedVersion(format!(
                "Sec-WebSocket-Version {other} is not supported; use 13"
            )));
        }
        None => return bad("no Sec-WebSocket-Version header"),
    }
    let Some(key) = request.header("sec-websocket-key").map(str::trim) else {
        return bad("no Sec-WebSocket-Key header");
    };
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(accept_for(key)),
        _ => bad("Sec-WebSocket-Key is not 16 bytes in base64"),
    }
}

/// The server's `101 Switching Protocols`, carrying `accept`.
pub fn switching_protocols(accept: &str) -> Response {
    Response {
        status: 101,
        reason: "Switching Protocols".into(),
        headers: vec![
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
            ("Sec-WebSocket-Accept".into(), accept.into()),
        ],
        body: Vec::new(),
    }
}

/// Checks the server's answer as a client must (section 4.1): anything but
/// a correct `101` fails the connection.
pub fn check_response(response: &Response, key: &str) -> Result<(), String> {
    if response.status != 101 {
        return Err(format!(
            "the server answered {} {}, not 101 Switching Protocols",
            response.status, response.reason
        ));
    }
    if !has_token(response.header("upgrade"), "websocket") {
        return Err("101 without `Upgrade: websocket`".into());
    }
    if !has_token(response.header("connection"), "upgrade") {
        return Err("101 without `Connection: Upgrade`".into());
    }
    match response.header("sec-websocket-accept").map(str::trim) {
        Some(accept) if accept == accept_for(key) => {}
        Some(_) => return Err("Sec-WebSocket-Accept does not match our key".into()),
        None => return Err("101 without Sec-WebSocket-Accept".into()),
    }
    // We asked for no extension and no subprotocol: one we did not ask for
    // means the server speaks something we cannot read.
    if response.header("sec-websocket-extensions").is_some() {
        return Err("the server chose an extension we did not offer".into());
    }
    if response.header("sec-websocket-protocol").is_some() {
        return Err("the server chose a subprotocol we did not offer".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Frames (section 5)
// ---------------------------------------------------------------------------

/// What a frame is (section 5.2). Opcodes 3-7 and 11-15 are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented, allowed
    /// between the fragments of a message.
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }

    pub fn name(self) -> &'static str {
        match self {
            Opcode::Continuation => "continuation",
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Close => "close",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
        }
    }
}

/// One frame, its payload unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1-3 as the three low bits: nonzero only with an extension.
    pub rsv: u8,
    pub opcode: Opcode,
    /// The masking key, on every frame a client sends (section 5.3).
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A whole message, or a control frame, in one unmasked frame.
    pub fn new(opcode: Opcode, payload: Vec<u8>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload,
        }
    }

    pub fn text(text: &str) -> Frame {
        Frame::new(Opcode::Text, text.as_bytes().to_vec())
    }

    /// A close frame with `code` and `reason` (cut to fit 125 bytes on a
    /// character boundary).
    pub fn close(code: u16, reason: &str) -> Frame {
        let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        Frame::new(Opcode::Close, payload)
    }

    /// The same frame masked with `key`, as a client must send it.
    pub fn masked(mut self, key: [u8; 4]) -> Frame {
        self.mask = Some(key);
        self
    }

    /// The frame's bytes: the shortest length form (section 5.2: "the
    /// minimal number of bytes MUST be used"), the payload masked if a key
    /// is set.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len();
        let mut out = Vec::with_capacity(len + 14);
        out.push((self.fin as u8) << 7 | (self.rsv & 0b111) << 4 | self.opcode.bits());
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        if len <= 125 {
            out.push(mask_bit | len as u8);
        } else if len <= 0xFFFF {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                let start = out.len();
                out.extend_from_slice(&self.payload);
                apply_mask(&mut out[start..], key, 0);
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// How many bytes the frame at the start of `buf` takes, header and
/// payload, once all of them are there (`None` until then). Only the length
/// bits are read: what a proxy needs to pass frames on whole, without
/// judging them (that is the endpoints' job).
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let first = *buf.get(1)?;
    let mask = if first & 0x80 != 0 { 4 } else { 0 };
    let (header, payload) = match first & 0x7F {
        126 => (
            4,
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as u64,
        ),
        127 => (10, u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)),
        short => (2, short as u64),
    };
    let total = (header + mask) as u64 + payload;
    (buf.len() as u64 >= total).then_some(total as usize)
}

/// XORs `data` with the key, `data[0]` being payload byte number `offset`
/// (section 5.3). Masking and unmasking are the same operation.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

/// Which side sent the bytes being read: clients must mask, servers must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// A breach of the protocol: the connection fails, and the close frame we
/// send (if we still can) carries `close_code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub close_code: u16,
    pub why: String,
}

fn violation<T>(close_code: u16, why: impl Into<String>) -> Result<T, Violation> {
    Err(Violation {
        close_code,
        why: why.into(),
    })
}

/// A frame's header: everything before the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of header (2 to 14).
    pub len: usize,
}

/// The frame header at the start of `buf` (`Ok(None)` until all of it is
/// there), checked against every rule a header alone can break, so that a
/// bad frame fails the connection before its payload arrives.
pub fn decode_header(
    buf: &[u8],
    from: Sender,
    max_payload: usize,
) -> Result<Option<Header>, Violation> {
    use close_code::{PROTOCOL_ERROR, TOO_BIG};
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let rsv = (buf[0] >> 4) & 0b111;
    let Some(opcode) = Opcode::from_bits(buf[0] & 0x0F) else {
        return violation(
            PROTOCOL_ERROR,
            format!("reserved opcode {:#x}", buf[0] & 0x0F),
        );
    };
    if rsv != 0 {
        return violation(
            PROTOCOL_ERROR,
            format!("RSV bits {rsv:03b} set, but no extension was negotiated"),
        );
    }
    let masked = buf[1] & 0x80 != 0;
    match (from, masked) {
        (Sender::Client, false) => return violation(PROTOCOL_ERROR, "a client frame not masked"),
        (Sender::Server, true) => return violation(PROTOCOL_ERROR, "a server frame masked"),
        _ => {}
    }
    let (payload_len, mut len) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()), 10),
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if payload_len >> 63 != 0 {
        return violation(PROTOCOL_ERROR, "64-bit length with its top bit set");
    }
    if opcode.is_control() {
        if !fin {
            return violation(
                PROTOCOL_ERROR,
                format!("a fragmented {} frame", opcode.name()),
            );
        }
        if payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return violation(
                PROTOCOL_ERROR,
                format!(
                    "a {} frame of {payload_len} bytes (at most 125)",
                    opcode.name()
                ),
            );
        }
    }
    if payload_len > max_payload as u64 {
        return violation(
            TOO_BIG,
            format!("a frame of {payload_len} bytes, over the limit of {max_payload}"),
        );
    }
    let mask = if masked {
        if buf.len() < len + 4 {
            return Ok(None);
        }
        let key = buf[len..len + 4].try_into().unwrap();
        len += 4;
        Some(key)
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        len,
    }))
}

/// The whole frame at the start of `buf` and the bytes it took, or
/// `Ok(None)` until all of it has arrived.
pub fn decode_frame(
    buf: &[u8],
    from: Sender,
    max_payload: usize,
) -> Result<Option<(Frame, usize)>, Violation> {
    let Some(header) = decode_header(buf, from, max_payload)? else {
        return Ok(None);
    };
    Ok(frame_with(buf, &header))
}

/// The frame `header` starts, once all of its payload is in `buf`.
fn frame_with(buf: &[u8], header: &Header) -> Option<(Frame, usize)> {
    let end = header.len + header.payload_len as usize;
    if buf.len() < end {
        return None;
    }
    let mut payload = buf[header.len..end].to_vec();
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    let frame = Frame {
        fin: header.fin,
        rsv: header.rsv,
        opcode: header.opcode,
        mask: header.mask,
        payload,
    };
    Some((frame, end))
}

// ---------------------------------------------------------------------------
// UTF-8, checked as the bytes arrive (section 8.1)
// ---------------------------------------------------------------------------

/// Checks text that arrives in pieces, failing at the first byte after which
/// no continuation could make it valid UTF-8 (not at the end of the
/// message: the Autobahn suite's "fail fast" cases, 6.4.x).
#[derive(Clone, Debug, Default)]
pub struct Utf8Check {
    /// The start of a character split across pieces (at most 3 bytes).
    pending: Vec<u8>,
}

impl Utf8Check {
    /// Takes the next piece; `false` once the text can no longer be valid.
    pub fn push(&mut self, mut bytes: &[u8]) -> bool {
        while !self.pending.is_empty() && !bytes.is_empty() {
            self.pending.push(bytes[0]);
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.clear(),
                Err(e) if e.error_len().is_some() => return false,
                Err(_) => {} // still the start of a character
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            // `error_len() == None`: the bytes end inside a character that
            // could still be completed.
            Err(e) if e.error_len().is_none() => {
                self.pending = bytes[e.valid_up_to()..].to_vec();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the text ended on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Messages (section 5.4, 5.5, 7)
// ---------------------------------------------------------------------------

/// A whole data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

/// What a frame means to the endpoint that reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    Message(Message),
    /// Answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// An answer to our ping, or unsolicited (a heartbeat): nothing to do.
    Pong(Vec<u8>),
    /// The peer's close: its code (`None` when the frame had none, which
    /// the API reports as 1005) and reason. Answer with a close.
    Close(Option<(u16, String)>),
}

/// Whether `code` may appear in a close frame (section 7.4): 1000-1003,
/// 1007-1014 (1012-1014 registered with IANA since the RFC), and
/// 3000-4999 for libraries and applications. 1005, 1006 and 1015 are for
/// reporting only, never sent.
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The meaning of a close frame's payload (section 5.5.1).
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, Violation> {
    use close_code::PROTOCOL_ERROR;
    match payload {
        [] => Ok(None),
        [_] => violation(PROTOCOL_ERROR, "a close frame with a 1-byte payload"),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !valid_close_code(code) {
                return violation(PROTOCOL_ERROR, format!("invalid close code {code}"));
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => Ok(Some((code, reason.to_string()))),
                Err(_) => violation(PROTOCOL_ERROR, "a close reason that is not UTF-8"),
            }
        }
    }
}

/// The message being put together from fragments.
#[derive(Debug)]
struct Partial {
    opcode: Opcode,
    data: Vec<u8>,
    utf8: Utf8Check,
}

/// Reads frames from one side of a connection and puts messages together,
/// enforcing section 5 and 7: the one reader both endpoints use.
#[derive(Debug)]
pub struct Reader {
    from: Sender,
    max_message: usize,
    partial: Option<Partial>,
    /// Of an incomplete text frame at the front of the buffer: how many
    /// payload bytes have been checked, and the check's state after them.
    early_check: Option<(usize, Utf8Check)>,
}

impl Reader {
    /// A reader of what `from` sends, refusing messages over `max_message`.
    pub fn new(from: Sender, max_message: usize) -> Reader {
        Reader {
            from,
            max_message,
            partial: None,
            early_check: None,
        }
    }

    /// Whether a fragmented message has begun and not ended.
    pub fn mid_message(&self) -> bool {
        self.partial.is_some()
    }

    /// The next frame at the start of `buf`, the bytes it took, and what it
    /// means (`None` for a fragment that does not end its message).
    /// `Ok(None)` until the frame has arrived; meanwhile the text of an
    /// incomplete text frame is checked, so that invalid UTF-8 fails the
    /// connection as soon as it arrives.
    #[allow(clippy::type_complexity)]
    pub fn next(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(Frame, usize, Option<Incoming>)>, Violation> {
        let room = self.max_message - self.partial.as_ref().map_or(0, |p| p.data.len());
        let Some(header) = decode_header(buf, self.from, self.max_message)? else {
            return Ok(None);
        };
        self.check_sequence(&header)?;
        if !header.opcode.is_control() && header.payload_len > room as u64 {
            return violation(
                close_code::TOO_BIG,
                format!("a message over the limit of {} bytes", self.max_message),
            );
        }
        let Some((frame, used)) = frame_with(buf, &header) else {
            self.check_early(buf, &header)?;
            return Ok(None);
        };
        self.early_check = None;
        let incoming = self.take(&frame)?;
        Ok(Some((frame, used, incoming)))
    }

    /// The fragmentation rules (section 5.4), checked on the header.
    fn check_sequence(&self, header: &Header) -> Result<(), Violation> {
        use close_code::PROTOCOL_ERROR;
        match (header.opcode, &self.partial) {
            (Opcode::Continuation, None) => violation(
                PROTOCOL_ERROR,
                "a continuation frame with nothing to continue",
            ),
            (Opcode::Text | Opcode::Binary, Some(p)) => violation(
                PROTOCOL_ERROR,
                format!(
                    "a new {} message inside a fragmented {} message",
                    header.opcode.name(),
                    p.opcode.name()
                ),
            ),
            _ => Ok(()),
        }
    }

    /// Checks the UTF-8 of the part of a text frame that has arrived.
    fn check_early(&mut self, buf: &[u8], header: &Header) -> Result<(), Violation> {
        let is_text = match header.opcode {
            Opcode::Text => true,
            Opcode::Continuation => self
                .partial
                .as_ref()
                .is_some_and(|p| p.opcode == Opcode::Text),
            _ => false,
        };
        if !is_text || buf.len() <= header.len {
            return Ok(());
        }
        let (checked, mut state) = self.early_check.take().unwrap_or_else(|| {
            let state = match &self.partial {
                Some(p) => p.utf8.clone(),
                None => Utf8Check::default(),
            };
            (0, state)
        });
        let arrived = &buf[header.len..];
        let mut fresh = arrived[checked.min(arrived.len())..].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut fresh, key, checked);
        }
        if !state.push(&fresh) {
            return violation(close_code::INVALID_DATA, "text that is not UTF-8");
        }
        self.early_check = Some((arrived.len(), state));
        Ok(())
    }

    /// What a whole frame means, given the message it may continue.
    fn take(&mut self, frame: &Frame) -> Result<Option<Incoming>, Violation> {
        let invalid_text = || violation(close_code::INVALID_DATA, "text that is not UTF-8");
        match frame.opcode {
            Opcode::Ping => Ok(Some(Incoming::Ping(frame.payload.clone()))),
            Opcode::Pong => Ok(Some(Incoming::Pong(frame.payload.clone()))),
            Opcode::Close => Ok(Some(Incoming::Close(parse_close(&frame.payload)?))),
            Opcode::Text | Opcode::Binary => {
                let mut partial = Partial {
                    opcode: frame.opcode,
                    data: frame.payload.clone(),
                    utf8: Utf8Check::default(),
                };
                if frame.opcode == Opcode::Text && !partial.utf8.push(&frame.payload) {
                    return invalid_text();
                }
                self.partial = Some(partial);
                Ok(self.finish_if(frame.fin)?)
            }
            Opcode::Continuation => {
                let partial = self.partial.as_mut().expect("checked by check_sequence");
                if partial.opcode == Opcode::Text && !partial.utf8.push(&frame.payload) {
                    return invalid_text();
                }
                partial.data.extend_from_slice(&frame.payload);
                Ok(self.finish_if(frame.fin)?)
            }
        }
    }

    fn finish_if(&mut self, fin: bool) -> Result<Option<Incoming>, Violation> {
        if !fin {
            return Ok(None);
        }
        let partial = self.partial.take().expect("a message was started");
        let message = match partial.opcode {
            Opcode::Text => {
                if !partial.utf8.is_complete() {
                    return violation(close_code::INVALID_DATA, "text that ends mid-character");
                }
                Message::Text(String::from_utf8(partial.data).expect("checked as it came"))
            }
            _ => Message::Binary(partial.data),
        };
        Ok(Some(Incoming::Message(message)))
    }
}

// ---------------------------------------------------------------------------
// `pushpull decode ws`
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of `pushpull decode ws`: a frame, a whole message, a close, or
/// the violation that stopped the reading. Fields print in this order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Decoded {
    Frame {
        fin: bool,
        rsv: u8,
        opcode: &'static str,
        masked: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        mask: Option<String>,
        length: usize,
        /// The payload as text, where it is text (a text message's frames,
        /// a ping's or pong's payload when it is UTF-8) ...
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// ... and in hex otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
    },
    Text {
        message: &'static str,
        data: String,
    },
    Binary {
        message: &'static str,
        data_hex: String,
    },
    Close {
        close_code: u16,
        reason: String,
    },
    Error {
        error: String,
        close_code: u16,
    },
}

/// Every frame, message and close in `bytes` sent by `from`, as `pushpull
/// decode ws` prints them; stops at the first violation.
pub fn decode_all(bytes: &[u8], from: Sender) -> Vec<Decoded> {
    let mut reader = Reader::new(from, usize::MAX >> 1);
    let mut text_message = false;
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (frame, used, incoming) = match reader.next(rest) {
            Ok(Some(found)) => found,
            Ok(None) => {
                out.push(Decoded::Error {
                    error: format!("the bytes end inside a frame ({} bytes left)", rest.len()),
                    close_code: close_code::ABNORMAL,
                });
                break;
            }
            Err(v) => {
                out.push(Decoded::Error {
                    error: v.why,
                    close_code: v.close_code,
                });
                break;
            }
        };
        rest = &rest[used..];
        match frame.opcode {
            Opcode::Text => text_message = true,
            Opcode::Binary => text_message = false,
            _ => {}
        }
        let as_text = match frame.opcode {
            Opcode::Text | Opcode::Ping | Opcode::Pong => true,
            Opcode::Continuation => text_message,
            Opcode::Binary | Opcode::Close => false,
        };
        let text = std::str::from_utf8(&frame.payload)
            .ok()
            .filter(|_| as_text)
            .map(str::to_string);
        out.push(Decoded::Frame {
            fin: frame.fin,
            rsv: frame.rsv,
            opcode: frame.opcode.name(),
            masked: frame.mask.is_some(),
            mask: frame.mask.map(|key| hex(&key)),
            length: frame.payload.len(),
            payload_hex: text.is_none().then(|| hex(&frame.payload)),
            payload: text,
        });
        match incoming {
            Some(Incoming::Message(Message::Text(data))) => out.push(Decoded::Text {
                message: "text",
                data,
            }),
            Some(Incoming::Message(Message::Binary(data))) => out.push(Decoded::Binary {
                message: "binary",
                data_hex: hex(&data),
            }),
            Some(Incoming::Close(close)) => {
                let (close_code, reason) = close.unwrap_or((close_code::NO_STATUS, String::new()));
                out.push(Decoded::Close { close_code, reason });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_handshake_example() {
        // Section 1.3.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(client_key(*b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn the_rfc_frame_examples() {
        // Section 5.7.
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(Frame::text("Hello").encode(), unmasked);
        assert_eq!(
            Frame::text("Hello")
                .masked([0x37, 0xfa, 0x21, 0x3d])
                .encode(),
            masked
        );
        let (frame, used) = decode_frame(&masked, Sender::Client, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!((frame.payload.as_slice(), used), (&b"Hello"[..], 11));
        let mut reader = Reader::new(Sender::Server, 1 << 20);
        let (_, _, first) = reader
            .next(&[0x01, 0x03, 0x48, 0x65, 0x6c])
            .unwrap()
            .unwrap();
        assert_eq!(first, None);
        let (_, _, second) = reader.next(&[0x80, 0x02, 0x6c, 0x6f]).unwrap().unwrap();
        assert_eq!(
            second,
            Some(Incoming::Message(Message::Text("Hello".into())))
        );
        let mut long = vec![0x82, 0x7E, 0x01, 0x00];
        long.extend(vec![0u8; 256]);
        assert_eq!(Frame::new(Opcode::Binary, vec![0; 256]).encode(), long);
        let mut longer = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        longer.extend(vec![0u8; 65536]);
        assert_eq!(Frame::new(Opcode::Binary, vec![0; 65536]).encode(), longer);
    }

    #[test]
    fn utf8_fails_as_soon_as_it_cannot_be_valid() {
        let mut check = Utf8Check::default();
        assert!(check.push(&[0xce, 0xba, 0xe1]));
        assert!(!check.is_complete());
        assert!(check.push(&[0xbd]));
        // 0xf4 0x90: above U+10FFFF, wrong already at its second byte.
        assert!(!Utf8Check::default().push(&[0xf4, 0x90]));
    }
}
