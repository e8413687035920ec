//! Server-sent events as an OpenAI-compatible server writes them: `data: JSON` lines, events
//! separated by a blank line, `data: [DONE]` last. Written here because it is a few lines and
//! the event-source crates bring their own HTTP clients.

/// Splits a byte stream into the `data` of each event.
#[derive(Default)]
pub struct Events {
    buffer: Vec<u8>,
}

impl Events {
    /// Takes the next bytes; returns the data of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = find_blank_line(&self.buffer) {
            let event: Vec<u8> = self.buffer.drain(..end.0).collect();
            self.buffer.drain(..end.1);
            let text = String::from_utf8_lossy(&event);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

/// Where the first blank line is: (end of the event, length of the separator).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads() {
        let mut e = Events::default();
        assert!(e.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            e.push(b": 1}\n\ndata: [DONE]\n\n"),
            ["{\"a\": 1}", "[DONE]"]
        );
        assert_eq!(e.push(b": comment\r\n\r\ndata:x\r\n\r\n"), ["x"]);
    }
}
