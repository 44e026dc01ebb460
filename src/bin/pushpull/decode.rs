//! `pushpull decode`: raw wire bytes, decoded as a browser would.

use std::path::PathBuf;

/// Reads the stream in chunks and prints events as they complete, so a live
/// stream piped in shows its events as they arrive.
pub fn sse(file: Option<PathBuf>) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut input: Box<dyn Read> = match &file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut parser = pushpull::wire::event_stream::Parser::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = input
            .read(&mut chunk)
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            break;
        }
        for output in parser.feed(&chunk[..n]) {
            let line = serde_json::to_string(&output).expect("outputs serialize");
            writeln!(out, "{line}").map_err(|e| format!("write failed: {e}"))?;
        }
        out.flush().map_err(|e| format!("write failed: {e}"))?;
    }
    // A last event without its blank line is dropped, as EventSource does.
    parser.end_of_stream();
    Ok(())
}

/// Reads all of `file` (standard input when `None`).
pub fn read_all(file: &Option<PathBuf>) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    match &file {
        Some(path) => {
            bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("read failed: {e}"))?;
        }
    }
    Ok(bytes)
}

/// Reads all the bytes (a capture, a pasted `curl -v` exchange) and prints
/// one JSON object per HTTP message in them.
pub fn http(file: Option<PathBuf>, responses: bool) -> Result<(), String> {
    use std::io::Write;
    let bytes = read_all(&file)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for message in pushpull::wire::http::decode_messages(&bytes, responses) {
        let line = serde_json::to_string(&message).expect("decoded messages serialize");
        writeln!(out, "{line}").map_err(|e| format!("write failed: {e}"))?;
    }
    Ok(())
}

/// Reads all the bytes one side of a WebSocket sent and prints its frames,
/// messages and closes, one JSON object per line.
pub fn ws(file: Option<PathBuf>, from: pushpull::wire::websocket::Sender) -> Result<(), String> {
    use std::io::Write;
    let bytes = read_all(&file)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in pushpull::wire::websocket::decode_all(&bytes, from) {
        let line = serde_json::to_string(&line).expect("JSON values serialize");
        writeln!(out, "{line}").map_err(|e| format!("write failed: {e}"))?;
    }
    Ok(())
}
