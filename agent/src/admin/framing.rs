//! Newline-delimited JSON framing with a bound on the line length.
use std::io;

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Longest request line the agent accepts.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Longest response line the client accepts (session lists can be long).
pub const MAX_RESPONSE_LINE: usize = 64 * 1024 * 1024;

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A line, without its `\n`; the last line may lack one.
    Line(Vec<u8>),
    /// The peer closed the stream before sending anything more.
    Eof,
    /// More than the limit arrived before a `\n`.
    TooLong,
}

/// Reads one line of at most `max` bytes (the `\n` excluded).
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> io::Result<Frame> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Frame::Eof
            } else {
                Frame::Line(line)
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(nl) => (&available[..nl], Some(nl + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > max {
            return Ok(Frame::TooLong);
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Frame::Line(line));
        }
    }
}

/// Writes `value` as one JSON line and flushes.
pub async fn write_line<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    value: &T,
) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Frame> {
        // A tiny buffer so that lines span several fill_buf calls.
        let mut reader = BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        loop {
            let f = read_line(&mut reader, max).await.unwrap();
            let stop = matches!(f, Frame::Eof | Frame::TooLong);
            out.push(f);
            if stop {
                return out;
            }
        }
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let cases: [(&[u8], usize, Vec<Frame>); 6] = [
            (b"", 10, vec![Frame::Eof]),
            (b"abc\n", 10, vec![line("abc"), Frame::Eof]),
            (
                b"abc\ndefgh\n",
                5,
                vec![line("abc"), line("defgh"), Frame::Eof],
            ),
            (b"abc\ndefghi\n", 5, vec![line("abc"), Frame::TooLong]),
            (b"tail", 10, vec![line("tail"), Frame::Eof]),
            (b"\n\n", 10, vec![line(""), line(""), Frame::Eof]),
        ];
        for (input, max, want) in cases {
            assert_eq!(frames(input, max).await, want, "{input:?}");
        }
    }

    #[tokio::test]
    async fn write_line_ends_with_newline() {
        let mut out = Vec::new();
        write_line(&mut out, &serde_json::json!({"a": "b\nc"}))
            .await
            .unwrap();
        assert_eq!(out, b"{\"a\":\"b\\nc\"}\n");
    }
}
