//! Cassettes: one readable JSON file per exchange, named by its operation, model and key
//! ([`Exchange::key`]). Bodies and event payloads that are JSON are kept as the exact text
//! that was sent (so the file reads as JSON and replays byte for byte); others as text or
//! base64. Each event keeps its time since the answer began, for replay at the recorded pace.
//! Only the headers that change an answer are written: never a credential or a signature.

use crate::frames::decode_frame;
use crate::{Exchange, Reply, ReplyBody, Upstream, UpstreamError};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A JSON value with its object keys sorted, at every depth.
pub(crate) fn canonical(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Bytes as written in a cassette: exactly one of the three is set.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Content {
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

impl Content {
    fn of(bytes: &[u8]) -> Content {
        match std::str::from_utf8(bytes) {
            // RawValue keeps the text as it is, whitespace included.
            Ok(text) => match serde_json::from_str::<Box<RawValue>>(text) {
                Ok(raw) if raw.get() == text => Content {
                    json: Some(raw),
                    ..Content::default()
                },
                _ => Content {
                    text: Some(text.to_owned()),
                    ..Content::default()
                },
            },
            Err(_) => Content {
                base64: Some(aws_smithy_types::base64::encode(bytes)),
                ..Content::default()
            },
        }
    }

    fn bytes(&self) -> Result<Bytes, String> {
        match (&self.json, &self.text, &self.base64) {
            (Some(raw), None, None) => Ok(Bytes::copy_from_slice(raw.get().as_bytes())),
            (None, Some(text), None) => Ok(Bytes::copy_from_slice(text.as_bytes())),
            (None, None, Some(b64)) => aws_smithy_types::base64::decode(b64)
                .map(Bytes::from)
                .map_err(|e| format!("base64: {e}")),
            (None, None, None) => Ok(Bytes::new()),
            _ => Err("a content with more than one of json, text and base64".into()),
        }
    }
}

/// Headers as a JSON object in their order (the order of an event's headers is part of its
/// bytes); serde's maps would sort or hash them.
mod ordered {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pairs: &[[String; 2]], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(pairs.len()))?;
        for [name, value] in pairs {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[String; 2]>, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<[String; 2]>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of header names and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    pairs.push([name, value]);
                }
                Ok(pairs)
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordedRequest {
    operation: String,
    model: String,
    #[serde(with = "ordered")]
    headers: Vec<[String; 2]>,
    body: Content,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordedEvent {
    /// Milliseconds since the answer's headers arrived.
    after_ms: u64,
    #[serde(default, with = "ordered", skip_serializing_if = "Vec::is_empty")]
    headers: Vec<[String; 2]>,
    #[serde(default)]
    payload: Content,
    /// The message's bytes, kept when writing it again from `headers` and `payload` would not
    /// give them back.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordedResponse {
    status: u16,
    #[serde(with = "ordered")]
    headers: Vec<[String; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<RecordedEvent>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cassette {
    key: String,
    recorded_at: String,
    request: RecordedRequest,
    response: RecordedResponse,
}

fn pairs(headers: &[(String, String)]) -> Vec<[String; 2]> {
    headers
        .iter()
        .map(|(n, v)| [n.clone(), v.clone()])
        .collect()
}

/// The cassette's file name: readable, and unique by the key.
fn file_name(exchange: &Exchange, key: &str) -> String {
    let model: String = exchange
        .model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{}-{model}-{}.json", exchange.operation.name(), &key[..16])
}

fn event(after: Duration, frame: &Bytes) -> RecordedEvent {
    let after_ms = after.as_millis() as u64;
    match decode_frame(frame) {
        Ok(decoded) if decoded.encode() == *frame => RecordedEvent {
            after_ms,
            headers: pairs(&decoded.headers),
            payload: Content::of(&decoded.payload),
            raw_base64: None,
        },
        _ => RecordedEvent {
            after_ms,
            headers: Vec::new(),
            payload: Content::default(),
            raw_base64: Some(aws_smithy_types::base64::encode(frame)),
        },
    }
}

/// Writes `cassette` into `dir` whole (a temporary file renamed into place).
fn write(dir: &Path, name: &str, cassette: &Cassette) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.partial"));
    let mut text = serde_json::to_string_pretty(cassette).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

/// An upstream whose finished exchanges are also written as cassettes in a directory.
/// A stream is written once its last message has passed through; one cut short is not.
pub struct Recorder {
    inner: Arc<dyn Upstream>,
    dir: PathBuf,
}

impl Recorder {
    pub fn new(inner: Arc<dyn Upstream>, dir: PathBuf) -> Self {
        Recorder { inner, dir }
    }
}

struct Pending {
    dir: PathBuf,
    name: String,
    key: String,
    request: RecordedRequest,
    status: u16,
    headers: Vec<[String; 2]>,
}

impl Pending {
    fn finish(self, body: Option<Content>, events: Option<Vec<RecordedEvent>>) {
        let cassette = Cassette {
            key: self.key,
            recorded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            request: self.request,
            response: RecordedResponse {
                status: self.status,
                headers: self.headers,
                body,
                events,
            },
        };
        match write(&self.dir, &self.name, &cassette) {
            Ok(path) => tracing::info!(cassette = %path.display(), "exchange recorded"),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "could not write a cassette")
            }
        }
    }
}

#[async_trait]
impl Upstream for Recorder {
    async fn send(&self, exchange: Exchange) -> Result<Reply, UpstreamError> {
        let key = exchange.key();
        let request = RecordedRequest {
            operation: exchange.operation.name().into(),
            model: exchange.model.clone(),
            headers: pairs(&exchange.headers),
            body: Content::of(&exchange.body),
        };
        let name = file_name(&exchange, &key);
        let reply = self.inner.send(exchange).await?;
        let pending = Pending {
            dir: self.dir.clone(),
            name,
            key,
            request,
            status: reply.status,
            headers: pairs(&reply.headers),
        };
        let body = match reply.body {
            ReplyBody::Whole(bytes) => {
                let content = Content::of(&bytes);
                tokio::task::spawn_blocking(move || pending.finish(Some(content), None));
                ReplyBody::Whole(bytes)
            }
            ReplyBody::Frames(frames) => {
                let began = Instant::now();
                let state = (frames, Some(pending), Vec::new());
                ReplyBody::Frames(
                    futures_util::stream::unfold(
                        state,
                        move |(mut frames, mut pending, mut events)| async move {
                            match frames.next().await {
                                Some(Ok(frame)) => {
                                    events.push(event(began.elapsed(), &frame));
                                    Some((Ok(frame), (frames, pending, events)))
                                }
                                Some(Err(e)) => {
                                    pending = None;
                                    Some((Err(e), (frames, pending, events)))
                                }
                                None => {
                                    if let Some(p) = pending.take() {
                                        let events = std::mem::take(&mut events);
                                        tokio::task::spawn_blocking(move || {
                                            p.finish(None, Some(events))
                                        });
                                    }
                                    None
                                }
                            }
                        },
                    )
                    .boxed(),
                )
            }
        };
        Ok(Reply {
            status: reply.status,
            headers: reply.headers,
            body,
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}, recording into {}",
            self.inner.describe(),
            self.dir.display()
        )
    }
}

/// How a replayed stream is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Every message at once.
    #[default]
    Fast,
    /// Each message when it came in the recording.
    Recorded,
}

/// Answers from cassettes. A call with no cassette goes to `fallback` when there is one
/// (a [`Recorder`] in front of the upstream, so the next run finds it), else it is refused
/// with [`UpstreamError::NotRecorded`].
pub struct Replay {
    dir: PathBuf,
    pace: Pace,
    fallback: Option<Arc<dyn Upstream>>,
}

impl Replay {
    pub fn new(dir: PathBuf, pace: Pace, fallback: Option<Arc<dyn Upstream>>) -> Self {
        Replay {
            dir,
            pace,
            fallback,
        }
    }

    fn load(&self, exchange: &Exchange, key: &str) -> Result<Option<Cassette>, UpstreamError> {
        let path = self.dir.join(file_name(exchange, key));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                tracing::error!(cassette = %path.display(), error = %e, "could not read a cassette");
                return Err(UpstreamError::Protocol(
                    "a recording could not be read".into(),
                ));
            }
        };
        let unreadable = |e: String| {
            tracing::error!(cassette = %path.display(), error = %e, "unreadable cassette");
            UpstreamError::Protocol("a recording could not be read".into())
        };
        let cassette: Cassette =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        if cassette.key != key {
            return Err(unreadable(format!("it holds key {}", cassette.key)));
        }
        Ok(Some(cassette))
    }
}

fn frame_of(event: &RecordedEvent) -> Result<Bytes, String> {
    if let Some(b64) = &event.raw_base64 {
        return aws_smithy_types::base64::decode(b64)
            .map(Bytes::from)
            .map_err(|e| format!("base64: {e}"));
    }
    Ok(crate::frames::DecodedFrame {
        headers: event
            .headers
            .iter()
            .map(|[n, v]| (n.clone(), v.clone()))
            .collect(),
        payload: event.payload.bytes()?,
    }
    .encode())
}

#[async_trait]
impl Upstream for Replay {
    async fn send(&self, exchange: Exchange) -> Result<Reply, UpstreamError> {
        let key = exchange.key();
        let Some(cassette) = self.load(&exchange, &key)? else {
            if let Some(fallback) = &self.fallback {
                return fallback.send(exchange).await;
            }
            tracing::warn!(
                operation = exchange.operation.name(),
                model = %exchange.model,
                key = %key,
                dir = %self.dir.display(),
                "no recording of this exchange"
            );
            return Err(UpstreamError::NotRecorded {
                operation: exchange.operation,
                model: exchange.model,
                key,
            });
        };
        let response = cassette.response;
        let headers = response.headers.into_iter().map(|[n, v]| (n, v)).collect();
        let unreadable = |e: String| {
            tracing::error!(key = %key, error = %e, "unreadable cassette");
            UpstreamError::Protocol("a recording could not be read".into())
        };
        let body = match response.events {
            None => ReplyBody::Whole(
                response
                    .body
                    .as_ref()
                    .map(Content::bytes)
                    .transpose()
                    .map_err(unreadable)?
                    .unwrap_or_default(),
            ),
            Some(events) => {
                let frames = events
                    .iter()
                    .map(|e| Ok((Duration::from_millis(e.after_ms), frame_of(e)?)))
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(unreadable)?;
                let pace = self.pace;
                let began = tokio::time::Instant::now();
                ReplyBody::Frames(
                    futures_util::stream::iter(frames)
                        .then(move |(after, frame)| async move {
                            if pace == Pace::Recorded {
                                tokio::time::sleep_until(began + after).await;
                            }
                            Ok(frame)
                        })
                        .boxed(),
                )
            }
        };
        Ok(Reply {
            status: response.status,
            headers,
            body,
        })
    }

    fn describe(&self) -> String {
        match &self.fallback {
            Some(f) => format!(
                "replay from {} (misses: {})",
                self.dir.display(),
                f.describe()
            ),
            None => format!("replay from {}", self.dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::tests::frame;
    use crate::Operation;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream that answers from fixed values and counts its calls.
    struct Fixed {
        calls: AtomicUsize,
        frames: Vec<Bytes>,
    }

    #[async_trait]
    impl Upstream for Fixed {
        async fn send(&self, exchange: Exchange) -> Result<Reply, UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let body = if exchange.operation.streams() {
                ReplyBody::Frames(
                    futures_util::stream::iter(self.frames.clone().into_iter().map(Ok)).boxed(),
                )
            } else {
                ReplyBody::Whole(Bytes::from_static(
                    b"{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[{\"text\":\"Hi\"}]}},  \"usage\":{\"inputTokens\":3}}",
                ))
            };
            Ok(Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            })
        }

        fn describe(&self) -> String {
            "fixed".into()
        }
    }

    fn exchange(operation: Operation, body: &str) -> Exchange {
        Exchange {
            operation,
            model: "anthropic.claude-v2".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    async fn collect(reply: Reply) -> Vec<Bytes> {
        match reply.body {
            ReplyBody::Whole(b) => vec![b],
            ReplyBody::Frames(f) => f.map(|r| r.unwrap()).collect().await,
        }
    }

    #[tokio::test]
    async fn recorded_exchanges_replay_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Arc::new(Fixed {
            calls: AtomicUsize::new(0),
            frames: vec![
                frame("messageStart", r#"{"role":"assistant"}"#),
                frame("contentBlockDelta", "{\"delta\": {\"text\":\"H\\u00e9\"}}"),
            ],
        });
        let recorder = Recorder::new(upstream.clone(), dir.path().to_owned());
        let whole = exchange(Operation::Converse, r#"{"messages":[],"b":1}"#);
        let stream = exchange(Operation::ConverseStream, r#"{"messages":[]}"#);
        let original_whole = collect(recorder.send(whole.clone()).await.unwrap()).await;
        let original_stream = collect(recorder.send(stream.clone()).await.unwrap()).await;
        // The files are written in the background.
        for _ in 0..100 {
            if std::fs::read_dir(dir.path()).unwrap().count() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let replay = Replay::new(dir.path().to_owned(), Pace::Fast, None);
        // Key order and whitespace in the request body do not matter.
        let reordered = exchange(Operation::Converse, r#"{ "b": 1, "messages": [] }"#);
        assert_eq!(
            collect(replay.send(reordered).await.unwrap()).await,
            original_whole
        );
        assert_eq!(
            collect(replay.send(stream).await.unwrap()).await,
            original_stream
        );
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
        let miss = exchange(Operation::Converse, r#"{"messages":[{"role":"user"}]}"#);
        assert!(matches!(
            replay.send(miss).await,
            Err(UpstreamError::NotRecorded { .. })
        ));
        // Readable: the body is JSON in the file, not an escaped string.
        let name = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with("Converse-"))
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(text.contains(r#""json": {"output":{"message""#), "{text}");
    }

    #[tokio::test]
    async fn a_miss_falls_through_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = Arc::new(Fixed {
            calls: AtomicUsize::new(0),
            frames: Vec::new(),
        });
        let replay = Replay::new(
            dir.path().to_owned(),
            Pace::Fast,
            Some(upstream.clone() as Arc<dyn Upstream>),
        );
        let reply = replay
            .send(exchange(Operation::Converse, "{}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_replays_at_its_recorded_pace_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let stream = exchange(Operation::ConverseStream, "{}");
        let key = stream.key();
        let cassette = serde_json::json!({
            "key": key,
            "recorded_at": "2026-01-01T00:00:00Z",
            "request": {"operation": "ConverseStream", "model": "m", "headers": {}, "body": {}},
            "response": {"status": 200, "headers": {}, "events": [
                {"after_ms": 0, "headers": {":event-type": "messageStart"}, "payload": {"json": {"role": "assistant"}}},
                {"after_ms": 300, "headers": {":event-type": "messageStop"}, "payload": {"text": "{}"}},
            ]},
        });
        std::fs::write(
            dir.path().join(file_name(&stream, &key)),
            cassette.to_string(),
        )
        .unwrap();
        for (pace, slow) in [(Pace::Fast, false), (Pace::Recorded, true)] {
            let replay = Replay::new(dir.path().to_owned(), pace, None);
            let began = Instant::now();
            let frames = collect(replay.send(stream.clone()).await.unwrap()).await;
            assert_eq!(frames.len(), 2);
            assert_eq!(
                decode_frame(&frames[1]).unwrap().header(":event-type"),
                Some("messageStop")
            );
            assert_eq!(began.elapsed() >= Duration::from_millis(300), slow);
        }
    }

    #[test]
    fn the_key_ignores_header_order_but_not_values() {
        let mut a = exchange(Operation::InvokeModel, "{}");
        a.headers.push(("accept".into(), "*/*".into()));
        let mut b = a.clone();
        b.headers.reverse();
        assert_eq!(a.key(), b.key());
        b.headers[0].1 = "application/json".into();
        assert_ne!(a.key(), b.key());
    }
}
