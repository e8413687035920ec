use percent_encoding::percent_decode_str;
use std::fmt::Write;

/// SigV4 URI encoding: every byte except the unreserved set `A-Z a-z 0-9 - _ . ~` becomes `%XX`.
/// `/` is encoded too; callers encode path segments one at a time.
pub fn uri_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The canonical URI of a non-S3 service: each segment of the path *as received* encoded once
/// more, so a `%3A` on the wire becomes `%253A` here.
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() || raw_path == "/" {
        return "/".to_owned();
    }
    raw_path
        .split('/')
        .map(|seg| uri_encode(seg.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query string: pairs decoded, re-encoded strictly, sorted.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| -> Vec<u8> {
                let plus_as_space = s.replace('+', "%20");
                percent_decode_str(&plus_as_space).collect()
            };
            (uri_encode(&decode(k)), uri_encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and collapses runs of spaces, as SigV4 canonicalization requires.
fn canonical_header_value(value: &[u8]) -> String {
    let value = String::from_utf8_lossy(value);
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds the canonical request. `signed_headers` are lower-case names; a header listed there
/// but absent from the request contributes an empty value (and so fails verification).
///
/// `authority` is the request's authority when it came as HTTP/2's `:authority`
/// pseudo-header: clients sign it under that name (as AWS accepts), or under `host`, which
/// an HTTP/2 request need not carry. Each name falls back on the other's value.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &http::HeaderMap,
    authority: Option<&str>,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut names: Vec<&String> = signed_headers.iter().collect();
    names.sort();
    names.dedup();
    let mut canonical_headers = String::new();
    for name in &names {
        let mut values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| canonical_header_value(v.as_bytes()))
            .collect();
        let host = || {
            headers
                .get("host")
                .map(|v| canonical_header_value(v.as_bytes()))
        };
        match name.as_str() {
            ":authority" => values.extend(authority.map(str::to_owned).or_else(host)),
            "host" if values.is_empty() => values.extend(authority.map(str::to_owned)),
            _ => {}
        }
        let _ = writeln!(canonical_headers, "{name}:{}", values.join(","));
    }
    let signed: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        canonical_uri(raw_path),
        canonical_query(raw_query),
        signed.join(";"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_id_colon_is_double_encoded() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-v2%3A1/invoke"),
            "/model/anthropic.claude-v2%253A1/invoke"
        );
        assert_eq!(
            canonical_uri("/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"),
            "/model/us.anthropic.claude-sonnet-4-20250514-v1%253A0/converse-stream"
        );
    }

    #[test]
    fn unencoded_colon_is_encoded_once() {
        assert_eq!(
            canonical_uri("/model/anthropic.claude-v2:1/invoke"),
            "/model/anthropic.claude-v2%3A1/invoke"
        );
    }

    #[test]
    fn query_is_sorted_and_encoded() {
        assert_eq!(canonical_query("b=2&a=x%20y&a=1"), "a=1&a=x%20y&b=2");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn authority_and_host_stand_for_each_other() {
        let mut with_host = http::HeaderMap::new();
        with_host.insert("host", "127.0.0.1:4680".parse().unwrap());
        let signed = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let h2 = canonical_request(
            "POST",
            "/",
            "",
            &http::HeaderMap::new(),
            Some("127.0.0.1:4680"),
            &signed(&[":authority", "x-amz-date"]),
            "e3",
        );
        assert!(
            h2.contains("\n:authority:127.0.0.1:4680\nx-amz-date:\n\n:authority;x-amz-date\n"),
            "{h2}"
        );
        let h1 = canonical_request(
            "POST",
            "/",
            "",
            &with_host,
            None,
            &signed(&[":authority"]),
            "e3",
        );
        assert!(h1.contains("\n:authority:127.0.0.1:4680\n"), "{h1}");
        let host_over_h2 = canonical_request(
            "POST",
            "/",
            "",
            &http::HeaderMap::new(),
            Some("127.0.0.1:4680"),
            &signed(&["host"]),
            "e3",
        );
        assert!(
            host_over_h2.contains("\nhost:127.0.0.1:4680\n"),
            "{host_over_h2}"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        assert_eq!(canonical_header_value(b"  a   b  c "), "a b c");
    }
}
