//! Bytes in, bytes out: an upstream's Chat Completions SSE body fed to a `Turn`, and the turn's events
//! written as the client's SSE bytes — the hot path of `responses-rs serve`, with no per-chunk object
//! outside Rust.
//!
//! - `ChunkedBody`: HTTP/1.1 `Transfer-Encoding: chunked` framing removed, across reads.
//! - `SseReader`: SSE framing (`data:` lines, blank-line dispatch, `\n` or `\r\n`), across reads.
//! - `chunk::feed_chunk` (in `chunk.rs`) reads one `data:` payload into the turn.
//! - `write_event`: one event as `event: TYPE\ndata: JSON\n\n`.

use super::events::Event;

/// Why the upstream's body could not be read (the response then fails: `server_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError(pub String);

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Write one event in the SSE wire format OpenAI uses (`event:` then `data:`).
pub fn write_event(event: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.type_name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing into a Vec fails only on a serializer error, which the event types never produce.
    if serde_json::to_writer(&mut *out, event).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size line.
    Size,
    /// Reading `remaining` bytes of data.
    Data {
        remaining: usize,
    },
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last (zero) chunk: trailers up to a blank line.
    Trailers,
    Done,
}

/// The de-chunker of an HTTP/1.1 chunked body, fed whatever the socket returned.
#[derive(Debug)]
pub struct ChunkedBody {
    state: ChunkState,
    line: Vec<u8>,
}

impl Default for ChunkedBody {
    fn default() -> Self {
        Self::new()
    }
}

const MAX_LINE: usize = 4096;

impl ChunkedBody {
    pub fn new() -> Self {
        ChunkedBody {
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }

    /// The terminating zero chunk and its trailers have been read.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Append the body bytes in `data` to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamError> {
        while !data.is_empty() {
            match self.state {
                ChunkState::Data { remaining } => {
                    let n = remaining.min(data.len());
                    out.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.state = if n == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data {
                            remaining: remaining - n,
                        }
                    };
                }
                ChunkState::Done => return Ok(()),
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailers => {
                    let Some(end) = data.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(data);
                        if self.line.len() > MAX_LINE {
                            return Err(UpstreamError("chunked body: line too long".into()));
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&data[..end]);
                    data = &data[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = match self.state {
                        ChunkState::Size => {
                            let size = line.split(|&b| b == b';').next().unwrap_or(b"");
                            let size = std::str::from_utf8(size)
                                .ok()
                                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                                .ok_or_else(|| {
                                    UpstreamError(format!(
                                        "chunked body: bad chunk size line {:?}",
                                        String::from_utf8_lossy(line)
                                    ))
                                })?;
                            if size == 0 {
                                ChunkState::Trailers
                            } else {
                                ChunkState::Data { remaining: size }
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => {
                            return Err(UpstreamError(
                                "chunked body: chunk data longer than its size".into(),
                            ))
                        }
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailers,
                    };
                }
            }
        }
        Ok(())
    }
}

/// One SSE event's data, as the reader hands it out.
#[derive(Debug, PartialEq, Eq)]
pub enum SseData<'a> {
    /// A `data:` payload (several `data:` lines joined with `\n`).
    Data(&'a [u8]),
    /// `data: [DONE]`, the end of an OpenAI chat stream.
    Done,
}

/// The SSE framing of an upstream body, fed in pieces; complete events come out in order.
#[derive(Debug, Default)]
pub struct SseReader {
    /// Bytes of an incomplete line.
    pending: Vec<u8>,
    /// The data lines of the event being read.
    data: Vec<u8>,
    has_data: bool,
    done: bool,
}

/// A cap on one event's data: a model server that never ends a line is refused, not buffered forever.
const MAX_EVENT: usize = 16 << 20;

impl SseReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// `data: [DONE]` has been read.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Nothing is buffered: no half line and no undispatched event.
    pub fn idle(&self) -> bool {
        self.pending.is_empty() && !self.has_data
    }

    /// Feed body bytes; `on_event` gets each complete event's data.
    pub fn feed<E>(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(SseData<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<UpstreamError>,
    {
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = &rest[..end];
            rest = &rest[end + 1..];
            let joined;
            if !self.pending.is_empty() {
                self.pending.extend_from_slice(line);
                joined = std::mem::take(&mut self.pending);
                line = &joined;
                self.line(line, &mut on_event)?;
                continue;
            }
            self.line(line, &mut on_event)?;
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() + self.data.len() > MAX_EVENT {
            return Err(UpstreamError("SSE body: an event larger than 16 MiB".into()).into());
        }
        Ok(())
    }

    fn line<E>(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(SseData<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<UpstreamError>,
    {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                let data = std::mem::take(&mut self.data);
                if data.as_slice() == b"[DONE]" {
                    self.done = true;
                    on_event(SseData::Done)?;
                } else if !self.done {
                    on_event(SseData::Data(&data))?;
                }
                self.data = data;
                self.data.clear();
            }
            return Ok(());
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // Comments (`:`), `event:`, `id:`, `retry:` carry nothing a chat stream needs.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut body = ChunkedBody::new();
        let mut out = Vec::new();
        for p in pieces {
            body.feed(p, &mut out).expect("valid chunked body");
        }
        (out, body.done())
    }

    #[test]
    fn chunked_body_across_any_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 0..wire.len() {
            let (out, done) = dechunk(&[&wire[..split], &wire[split..]]);
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(done, "split at {split}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(dechunk(&bytes), (b"hello, world".to_vec(), true));
        assert_eq!(dechunk(&[b"5\r\nhel"]), (b"hel".to_vec(), false));
    }

    #[test]
    fn chunked_body_refuses_garbage() {
        let mut out = Vec::new();
        let err = ChunkedBody::new().feed(b"zz\r\n", &mut out).unwrap_err();
        assert!(err.0.contains("bad chunk size"), "{err}");
        let err = ChunkedBody::new()
            .feed(b"2\r\nabc\r\n", &mut out)
            .unwrap_err();
        assert!(err.0.contains("longer than its size"), "{err}");
    }

    fn events(pieces: &[&[u8]]) -> (Vec<String>, bool) {
        let mut reader = SseReader::new();
        let mut seen = Vec::new();
        for p in pieces {
            reader
                .feed::<UpstreamError>(p, |d| {
                    seen.push(match d {
                        SseData::Data(b) => String::from_utf8_lossy(b).into_owned(),
                        SseData::Done => "<DONE>".to_owned(),
                    });
                    Ok(())
                })
                .expect("valid SSE");
        }
        (seen, reader.done())
    }

    #[test]
    fn sse_reader_across_any_split() {
        let wire = b": comment\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata:{\"b\":\ndata: 2}\n\ndata: [DONE]\n\n";
        let expected = vec![
            "{\"a\":1}".to_owned(),
            "{\"b\":\n2}".to_owned(),
            "<DONE>".to_owned(),
        ];
        for split in 0..wire.len() {
            assert_eq!(
                events(&[&wire[..split], &wire[split..]]),
                (expected.clone(), true),
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(events(&bytes), (expected, true));
    }

    #[test]
    fn sse_reader_holds_an_unfinished_event() {
        let mut reader = SseReader::new();
        let mut n = 0;
        reader
            .feed::<UpstreamError>(b"data: {}\n", |_| {
                n += 1;
                Ok(())
            })
            .expect("valid");
        assert_eq!(n, 0);
        assert!(!reader.idle());
    }
}
