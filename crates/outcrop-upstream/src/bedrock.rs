//! A Bedrock runtime endpoint as the upstream: each call signed again with this gateway's
//! credentials (SigV4 with the AWS SDKs' own signer, `aws-sigv4`, or a Bedrock API key as a
//! bearer token) and its answer passed back as it came.

use crate::frames::Splitter;
use crate::{Exchange, Reply, ReplyBody, Upstream, UpstreamError};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::time::{Duration, SystemTime};

/// How the gateway signs what it forwards.
#[derive(Clone)]
pub enum Credentials {
    SigV4 {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    /// A Bedrock API key (`Authorization: Bearer ...`).
    ApiKey(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::SigV4 { access_key_id, .. } => {
                write!(f, "SigV4({access_key_id}, secret hidden)")
            }
            Credentials::ApiKey(_) => write!(f, "ApiKey(hidden)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BedrockConfig {
    /// The runtime endpoint, as `https://bedrock-runtime.us-east-1.amazonaws.com` or
    /// `http://127.0.0.1:4680`.
    pub url: String,
    /// The region signed for.
    pub region: String,
    pub credentials: Credentials,
    pub connect_timeout: Duration,
    /// For the whole answer, stream included.
    pub timeout: Duration,
}

pub struct BedrockUpstream {
    config: BedrockConfig,
    client: reqwest::Client,
}

impl BedrockUpstream {
    pub fn new(config: BedrockConfig) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("upstream url {:?}: {e}", config.url))?;
        if url.host_str().is_none() {
            return Err(format!("upstream url {:?} names no host", config.url));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            // Let idle connections go before a server's keep-alive timeout closes them.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(BedrockUpstream { config, client })
    }

    /// The signing headers for one request.
    fn sign(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, UpstreamError> {
        let (access_key_id, secret_access_key, session_token) = match &self.config.credentials {
            Credentials::ApiKey(key) => {
                return Ok(vec![("authorization".into(), format!("Bearer {key}"))])
            }
            Credentials::SigV4 {
                access_key_id,
                secret_access_key,
                session_token,
            } => (access_key_id, secret_access_key, session_token),
        };
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        let identity = aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.clone(),
            None,
            "outcrop-upstream",
        )
        .into();
        let unsigned = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "could not sign an upstream request");
            UpstreamError::Protocol("the request could not be signed".into())
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| unsigned(&e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| unsigned(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| unsigned(&e))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect())
    }
}

/// A transport failure: a timeout, or no (or a broken) connection.
fn transport(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unreachable(e.to_string())
    }
}

/// Response headers worth passing on; the rest (dates, request ids, connection) are this
/// gateway's own.
pub(crate) fn kept(name: &str) -> bool {
    name == "content-type" || name == "x-amzn-errortype" || name.starts_with("x-amzn-bedrock-")
}

#[async_trait]
impl Upstream for BedrockUpstream {
    async fn send(&self, exchange: Exchange) -> Result<Reply, UpstreamError> {
        let url = format!(
            "{}{}",
            self.config.url.trim_end_matches('/'),
            exchange.path()
        );
        let host = reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
            })
            .unwrap_or_default();
        let mut headers = exchange.headers.clone();
        headers.push(("host".into(), host));
        let signing = self.sign(&url, &headers, &exchange.body)?;
        let mut request = self.client.post(&url).body(exchange.body.clone());
        for (name, value) in headers.iter().chain(&signing) {
            if name != "host" {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(n, _)| kept(n.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let event_stream = headers.iter().any(|(n, v)| {
            n == "content-type" && v.starts_with("application/vnd.amazon.eventstream")
        });
        if !(event_stream && status == 200) {
            let body = response.bytes().await.map_err(transport)?;
            return Ok(Reply {
                status,
                headers,
                body: ReplyBody::Whole(body),
            });
        }
        let chunks = response.bytes_stream();
        let frames = futures_util::stream::unfold(
            (chunks, Splitter::default(), false),
            |(mut chunks, mut splitter, mut ended)| async move {
                loop {
                    if ended {
                        return None;
                    }
                    match splitter.next() {
                        Ok(Some(frame)) => return Some((Ok(frame), (chunks, splitter, ended))),
                        Ok(None) => {}
                        Err(e) => {
                            ended = true;
                            return Some((Err(e), (chunks, splitter, ended)));
                        }
                    }
                    match chunks.next().await {
                        Some(Ok(bytes)) => splitter.push(&bytes),
                        Some(Err(e)) => {
                            ended = true;
                            return Some((Err(transport(e)), (chunks, splitter, ended)));
                        }
                        None if splitter.rest() > 0 => {
                            ended = true;
                            let e = UpstreamError::Protocol(format!(
                                "the stream ended inside a message ({} bytes)",
                                splitter.rest()
                            ));
                            return Some((Err(e), (chunks, splitter, ended)));
                        }
                        None => return None,
                    }
                }
            },
        );
        Ok(Reply {
            status,
            headers,
            body: ReplyBody::Frames(frames.boxed()),
        })
    }

    fn describe(&self) -> String {
        format!("bedrock {} ({})", self.config.url, self.config.region)
    }
}
