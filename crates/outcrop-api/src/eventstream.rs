//! `application/vnd.amazon.eventstream` frames for Bedrock's streaming responses. The binary
//! framing (prelude, headers, both CRC32s) is done by `aws-smithy-eventstream`, the codec the
//! AWS SDKs themselves use; this module only decides which headers and payloads Bedrock sends.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;

fn header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> Bytes {
    let mut out = Vec::with_capacity(message.payload().len() + 96);
    // Only fails for oversized headers or payloads, which these fixed shapes never have.
    write_message_to(message, &mut out).expect("event-stream frame within limits");
    Bytes::from(out)
}

/// An event frame (`:message-type=event`) whose payload is JSON.
pub fn event(event_type: &str, json: &serde_json::Value) -> Bytes {
    encode(&Message::new_from_parts(
        vec![
            header(":event-type", event_type),
            header(":content-type", "application/json"),
            header(":message-type", "event"),
        ],
        json.to_string(),
    ))
}

/// A `chunk` event of InvokeModelWithResponseStream: the model's JSON chunk base64-encoded in
/// `bytes`, plus Bedrock's `p` padding field (which varies the frame length).
pub fn chunk(model_chunk: &serde_json::Value, padding_len: usize) -> Bytes {
    const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let bytes = aws_smithy_types::base64::encode(model_chunk.to_string());
    let p = &PAD[..padding_len.min(PAD.len())];
    event("chunk", &serde_json::json!({ "bytes": bytes, "p": p }))
}

/// An exception frame (`:message-type=exception`), as a stream ends with after an error that
/// happened once the response had begun. `exception_type` is the lower-camel union member.
pub fn exception(exception_type: &str, message: &str) -> Bytes {
    encode(&Message::new_from_parts(
        vec![
            header(":exception-type", exception_type),
            header(":content-type", "application/json"),
            header(":message-type", "exception"),
        ],
        serde_json::json!({ "message": message }).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    fn headers(m: &Message) -> Vec<(String, String)> {
        m.headers()
            .iter()
            .map(|h| {
                (
                    h.name().as_str().to_owned(),
                    h.value().as_string().unwrap().as_str().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn chunk_round_trips_with_both_crcs() {
        let frame = chunk(
            &serde_json::json!({"completion": " Hi", "stop_reason": null, "stop": null}),
            5,
        );
        let message = read_message_from(&frame[..]).expect("CRCs and lengths check out");
        assert_eq!(
            headers(&message),
            [
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let payload: serde_json::Value = serde_json::from_slice(message.payload()).unwrap();
        assert_eq!(payload["p"], "abcde");
        let inner = aws_smithy_types::base64::decode(payload["bytes"].as_str().unwrap()).unwrap();
        let inner: serde_json::Value = serde_json::from_slice(&inner).unwrap();
        assert_eq!(inner["completion"], " Hi");
    }

    #[test]
    fn exception_frame() {
        let frame = exception(
            "throttlingException",
            "Too many tokens, please wait before trying again.",
        );
        let message = read_message_from(&frame[..]).unwrap();
        assert_eq!(
            headers(&message)[0],
            (
                ":exception-type".to_owned(),
                "throttlingException".to_owned()
            )
        );
        assert_eq!(
            headers(&message)[2],
            (":message-type".to_owned(), "exception".to_owned())
        );
        assert_eq!(
            &message.payload()[..],
            br#"{"message":"Too many tokens, please wait before trying again."}"#
        );
    }

    #[test]
    fn a_corrupted_frame_is_detected() {
        let mut frame = chunk(&serde_json::json!({"completion": "x"}), 3).to_vec();
        let last = frame.len() - 5;
        frame[last] ^= 0xff;
        assert!(read_message_from(&frame[..]).is_err());
    }
}
