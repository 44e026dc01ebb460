//! The `text/event-stream` format, parsed exactly as a browser's EventSource
//! does (WHATWG HTML, "Server-sent events", section 9.2.6 "Interpreting an
//! event stream").
//!
//! What a server writes, and what a browser makes of it:
//!
//! ```text
//! retry: 10000\n          -> reconnection time is now 10 s
//! \n
//! : keep-alive\n          -> a comment: ignored (it only keeps the connection busy)
//! id: 42\n
//! event: price\n
//! data: {"sym":"ACME",\n
//! data:  "px":101.5}\n    -> one leading space after the colon is removed, no more
//! \n                      -> blank line: dispatch
//!                            type "price", data "{\"sym\":\"ACME\",\n \"px\":101.5}",
//!                            lastEventId "42"
//! ```
//!
//! The rules that trip up hand-written parsers, all followed here:
//! - bytes are UTF-8 (invalid sequences become U+FFFD) and one leading BOM is dropped;
//! - a line ends at CR, LF or CRLF, and a CRLF may be split across two reads;
//! - `data` lines are joined with `\n`, and only the final `\n` is removed;
//! - only a blank line dispatches; a stream that ends mid-event drops that event;
//! - an event with an empty data buffer dispatches nothing, but its `id` still
//!   counts: the last event id is updated at every blank line;
//! - an `id` containing NUL is ignored; `retry` is ignored unless all ASCII digits;
//! - unknown fields are ignored, and a line without a colon is a field with an
//!   empty value (`data` alone appends an empty line).
//!
//! The parser is a plain state machine over bytes: it does no I/O, so the
//! network code, the `pushpull decode sse` tool and the tests share it.

use serde::Serialize;

/// What the parser hands to the application, one at a time, in stream order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// An event to dispatch, as `EventSource` would fire it.
    Event(Dispatched),
    /// A valid `retry` field set the reconnection time (milliseconds).
    Retry { retry: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dispatched {
    /// The event type: the `event` field, or `message` when there was none.
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: String,
    /// The last event id *after* this event: what `Last-Event-ID` would carry
    /// on a reconnection now.
    pub last_event_id: String,
}

/// The interpretation state of one EventSource. `last_event_id` outlives
/// connections: a client keeps the parser's id across reconnects (see
/// `reset_for_new_connection`).
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of an incomplete UTF-8 sequence at the end of the last chunk.
    utf8_pending: Vec<u8>,
    /// True until the first character of this connection's stream is seen
    /// (that is where a BOM may stand).
    seen_first_char: bool,
    /// The previous character was CR, so an LF now is part of the same CRLF.
    after_cr: bool,
    line: String,
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    /// The EventSource's last event ID string (set at each blank line).
    last_event_id: String,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// The id a reconnection sends as `Last-Event-ID` (empty: send none).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// A new connection starts a new stream: a new BOM may come and any
    /// half-received event of the old one is gone. The last event id stays,
    /// and the new stream's id buffer starts from it, as Chromium does (its
    /// parser is created with the EventSource's last event id) and as the
    /// web-platform-tests `format-field-id*` cases expect: a blank line before
    /// the new stream's first `id` does not clear it.
    pub fn reset_for_new_connection(&mut self) {
        let last_event_id = std::mem::take(&mut self.last_event_id);
        *self = Parser {
            last_event_id_buffer: last_event_id.clone(),
            last_event_id,
            ..Parser::default()
        };
    }

    /// Feeds the next bytes of the stream; returns what they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        let mut input = std::mem::take(&mut self.utf8_pending);
        input.extend_from_slice(bytes);
        let mut rest = &input[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.chars(text, &mut out);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Safe: `from_utf8` just said these bytes are valid.
                    self.chars(std::str::from_utf8(valid).expect("valid prefix"), &mut out);
                    match e.error_len() {
                        // A sequence cut by the end of this chunk: wait for more.
                        None => {
                            self.utf8_pending = after.to_vec();
                            break;
                        }
                        // An invalid sequence: one U+FFFD, as the UTF-8 decoder does.
                        Some(bad) => {
                            self.chars("\u{FFFD}", &mut out);
                            rest = &after[bad..];
                        }
                    }
                }
            }
        }
        out
    }

    /// The stream ended. Whatever is pending (a half line, an event with no
    /// blank line after it) is discarded, as the spec says.
    pub fn end_of_stream(&mut self) {
        self.utf8_pending.clear();
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        self.after_cr = false;
    }

    fn chars(&mut self, text: &str, out: &mut Vec<Output>) {
        for c in text.chars() {
            if !self.seen_first_char {
                self.seen_first_char = true;
                if c == '\u{FEFF}' {
                    continue; // one leading BOM is ignored
                }
            }
            match c {
                '\r' => {
                    self.after_cr = true;
                    self.end_line(out);
                }
                '\n' if self.after_cr => self.after_cr = false, // the LF of a CRLF
                '\n' => self.end_line(out),
                c => {
                    self.after_cr = false;
                    self.line.push(c);
                }
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<Output>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line.starts_with(':') {
            return; // a comment
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event_type = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            "id" if !value.contains('\0') => self.last_event_id_buffer = value.to_string(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Too many digits for a u64 is no sensible time: ignored.
                if let Ok(ms) = value.parse::<u64>() {
                    out.push(Output::Retry { retry: ms });
                }
            }
            _ => {} // unknown fields are ignored
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Output>) {
        // The id is taken at every blank line, even one that dispatches nothing.
        self.last_event_id = self.last_event_id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = match std::mem::take(&mut self.event_type) {
            t if t.is_empty() => "message".to_string(),
            t => t,
        };
        out.push(Output::Event(Dispatched {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

/// Cuts a byte stream into blocks, each ending with a blank line (after LF,
/// CR or CRLF line ends). A block is cut the moment its blank line ends, so
/// nothing waits for a byte that may never come; the LF of a CRLF that
/// arrives after that cut starts the next block, which is harmless to the
/// parser. Blocks are what a server writes in one go (an event, a comment, a
/// `retry`); the trace records one message per block, and a proxy forwards
/// whole blocks. Parsing is the [`Parser`]'s job, not this.
#[derive(Debug, Default)]
pub struct BlockSplitter {
    pending: Vec<u8>,
    /// Bytes in the current line so far (0: the line is empty so far).
    line_len: usize,
    after_cr: bool,
}

impl BlockSplitter {
    /// Adds bytes; returns the blocks they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut blocks = Vec::new();
        for &b in bytes {
            self.pending.push(b);
            match b {
                b'\n' if self.after_cr => self.after_cr = false, // LF of a CRLF
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    if self.line_len == 0 && self.pending.len() > 1 {
                        blocks.push(std::mem::take(&mut self.pending));
                    }
                    self.line_len = 0;
                }
                _ => {
                    self.after_cr = false;
                    self.line_len += 1;
                }
            }
        }
        blocks
    }
}

/// A block described in a few words, for a trace line or a diagram label:
/// its lines joined with ` | `, cut to about 48 characters.
pub fn block_description(block: &[u8]) -> String {
    let text = String::from_utf8_lossy(block);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let mut what = lines.join(" | ");
    if what.chars().count() > 48 {
        what = what.chars().take(45).collect::<String>() + "...";
    }
    what
}

/// Everything an EventSource would make of a whole stream (for `decode sse`).
pub fn decode_all(bytes: &[u8]) -> Vec<Output> {
    let mut parser = Parser::new();
    let out = parser.feed(bytes);
    parser.end_of_stream();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(stream: &str) -> Vec<(String, String, String)> {
        decode_all(stream.as_bytes())
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(d) => Some((d.event_type, d.data, d.last_event_id)),
                Output::Retry { .. } => None,
            })
            .collect()
    }

    fn ev(t: &str, d: &str, id: &str) -> (String, String, String) {
        (t.into(), d.into(), id.into())
    }

    #[test]
    fn data_lines_join_with_newline_and_lose_the_last() {
        assert_eq!(
            events("data: a\ndata: b\n\n"),
            vec![ev("message", "a\nb", "")]
        );
        assert_eq!(events("data\ndata\n\n"), vec![ev("message", "\n", "")]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        assert_eq!(events("data:  two\n\n"), vec![ev("message", " two", "")]);
        assert_eq!(events("data:none\n\n"), vec![ev("message", "none", "")]);
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines() {
        let want = vec![
            ev("message", "x", ""),
            ev("message", "y", ""),
            ev("message", "z", ""),
        ];
        assert_eq!(events("data:x\r\rdata:y\n\ndata:z\r\n\r\n"), want);
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        let mut p = Parser::new();
        let mut out = p.feed(b"data:a\r");
        out.extend(p.feed(b"\ndata:b\r\n\r"));
        out.extend(p.feed(b"\n"));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0],
            Output::Event(Dispatched {
                event_type: "message".into(),
                data: "a\nb".into(),
                last_event_id: String::new()
            })
        );
    }

    #[test]
    fn one_bom_is_dropped_a_second_is_not() {
        assert_eq!(events("\u{FEFF}data:1\n\n"), vec![ev("message", "1", "")]);
        // The second BOM makes the field name "\u{FEFF}data": unknown, ignored.
        assert_eq!(
            events("\u{FEFF}\u{FEFF}data:1\n\ndata:2\n\n"),
            vec![ev("message", "2", "")]
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_eq!(
            events(": hi\nfoo: bar\ndata: x\n\n"),
            vec![ev("message", "x", "")]
        );
    }

    #[test]
    fn empty_data_dispatches_nothing_but_sets_the_id() {
        let mut p = Parser::new();
        assert!(p.feed(b"id: 7\n\n").is_empty());
        assert_eq!(p.last_event_id(), "7");
        assert!(p.feed(b"event: x\n\n").is_empty());
        // The type buffer was cleared by that blank line.
        assert_eq!(p.feed(b"data: y\n\n").len(), 1);
    }

    #[test]
    fn id_persists_across_events_and_nul_ids_are_ignored() {
        assert_eq!(
            events("id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n"),
            vec![
                ev("message", "a", "1"),
                ev("message", "b", "1"),
                ev("message", "c", "1"),
                ev("message", "d", "")
            ]
        );
    }

    #[test]
    fn retry_needs_ascii_digits_only() {
        let out = decode_all(b"retry: 1500\nretry: 15x\nretry: -1\nretry:\nretry: 2000\n");
        assert_eq!(
            out,
            vec![Output::Retry { retry: 1500 }, Output::Retry { retry: 2000 }]
        );
    }

    #[test]
    fn event_type_defaults_to_message_and_resets_after_dispatch() {
        assert_eq!(
            events("event: price\ndata: 1\n\ndata: 2\n\n"),
            vec![ev("price", "1", ""), ev("message", "2", "")]
        );
    }

    #[test]
    fn an_unfinished_event_at_the_end_is_dropped() {
        assert_eq!(events("data: a\n\ndata: b\n"), vec![ev("message", "a", "")]);
        assert_eq!(events("data: a\n\ndata: b"), vec![ev("message", "a", "")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(decode_all(b"data: a\xffb\n\n").len(), 1);
        assert_eq!(events_bytes(b"data: a\xffb\n\n"), "a\u{FFFD}b");
        // A multi-byte character split across two reads survives.
        let mut p = Parser::new();
        let snow = "data: \u{2603}\n\n".as_bytes();
        let mut out = p.feed(&snow[..7]);
        out.extend(p.feed(&snow[7..]));
        assert!(matches!(&out[0], Output::Event(d) if d.data == "\u{2603}"));
    }

    fn events_bytes(bytes: &[u8]) -> String {
        match &decode_all(bytes)[0] {
            Output::Event(d) => d.data.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blocks_end_at_blank_lines_whatever_the_line_ends() {
        let mut s = BlockSplitter::default();
        let mut blocks = s.push(b"id: 1\ndata: a\n\n: hb\r\n\r");
        blocks.extend(s.push(b"\ndata: b\r\rdata: c"));
        // A block ends as soon as its blank line does; when that line ends
        // with CRLF split across reads, the LF rides at the start of the next.
        assert_eq!(
            blocks,
            vec![
                b"id: 1\ndata: a\n\n".to_vec(),
                b": hb\r\n\r".to_vec(),
                b"\ndata: b\r\r".to_vec()
            ]
        );
    }

    #[test]
    fn a_colon_in_the_value_stays() {
        assert_eq!(events("data: a: b\n\n"), vec![ev("message", "a: b", "")]);
        assert_eq!(events("data::x\n\n"), vec![ev("message", ":x", "")]);
    }
}
