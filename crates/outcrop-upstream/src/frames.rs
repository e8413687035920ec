//! Event-stream messages as whole units. The codec (`aws-smithy-eventstream`) decodes a
//! message into headers and payload; passing a stream through unchanged needs the message's
//! own bytes, so the split of a byte stream at message boundaries is done here from the
//! prelude's total length (its first four bytes, big-endian), the one thing it needs.

use crate::UpstreamError;
use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};

/// Event-stream limits: a 12-byte prelude and 4-byte message CRC around at most 16 MiB.
const MIN_MESSAGE: usize = 16;
const MAX_MESSAGE: usize = 16 * 1024 * 1024 + 128 * 1024;

/// Collects bytes and hands out whole messages.
#[derive(Default)]
pub(crate) struct Splitter {
    buffer: BytesMut,
}

impl Splitter {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, if one has arrived.
    pub fn next(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let total = (&self.buffer[..4]).get_u32() as usize;
        if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&total) {
            return Err(UpstreamError::Protocol(format!(
                "event-stream message of {total} bytes"
            )));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buffer.split_to(total).freeze()))
    }

    /// Bytes left over that are not a whole message (a stream cut short).
    pub fn rest(&self) -> usize {
        self.buffer.len()
    }
}

/// A message read for its meaning: its string headers and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedFrame {
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl DecodedFrame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The payload as JSON, when it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.payload).ok()
    }

    /// The message written out again. A message with headers of other types than string
    /// does not come back the same, so a recording compares before it relies on this.
    pub(crate) fn encode(&self) -> Bytes {
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| Header::new(n.clone(), HeaderValue::String(v.clone().into())))
            .collect();
        let message = Message::new_from_parts(headers, self.payload.clone());
        let mut out = Vec::with_capacity(self.payload.len() + 96);
        // Headers and payloads read from a message fit the limits they were read under.
        write_message_to(&message, &mut out).expect("event-stream message within limits");
        Bytes::from(out)
    }
}

/// Reads one whole message (both CRCs checked); only string headers are kept.
pub fn decode_frame(frame: &[u8]) -> Result<DecodedFrame, UpstreamError> {
    let message = read_message_from(frame)
        .map_err(|e| UpstreamError::Protocol(format!("event-stream message: {e}")))?;
    let headers = message
        .headers()
        .iter()
        .filter_map(|h| {
            h.value()
                .as_string()
                .ok()
                .map(|v| (h.name().as_str().to_owned(), v.as_str().to_owned()))
        })
        .collect();
    Ok(DecodedFrame {
        headers,
        payload: message.payload().clone(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn frame(event_type: &str, payload: &str) -> Bytes {
        DecodedFrame {
            headers: vec![
                (":event-type".into(), event_type.into()),
                (":content-type".into(), "application/json".into()),
                (":message-type".into(), "event".into()),
            ],
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }
        .encode()
    }

    #[test]
    fn splits_at_message_boundaries_whatever_the_chunks() {
        let a = frame("messageStart", r#"{"role":"assistant"}"#);
        let b = frame("contentBlockDelta", r#"{"delta":{"text":"Hi"}}"#);
        let wire = [a.clone(), b.clone()].concat();
        for cut in [1, 3, 5, a.len(), a.len() + 7, wire.len()] {
            let mut s = Splitter::default();
            let mut out = Vec::new();
            for piece in wire.chunks(cut) {
                s.push(piece);
                while let Some(m) = s.next().unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, vec![a.clone(), b.clone()], "chunks of {cut}");
            assert_eq!(s.rest(), 0);
        }
    }

    #[test]
    fn a_message_decodes_and_encodes_to_the_same_bytes() {
        let a = frame("chunk", r#"{"bytes":"eyJ4IjoxfQ==","p":"abc"}"#);
        let decoded = decode_frame(&a).unwrap();
        assert_eq!(decoded.header(":event-type"), Some("chunk"));
        assert_eq!(decoded.json().unwrap()["p"], "abc");
        assert_eq!(decoded.encode(), a);
    }

    #[test]
    fn an_impossible_length_is_refused() {
        let mut s = Splitter::default();
        s.push(&[0, 0, 0, 3, 1, 2, 3]);
        assert!(matches!(s.next(), Err(UpstreamError::Protocol(_))));
    }
}
