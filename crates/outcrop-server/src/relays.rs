//! Backing models served by an upstream Bedrock endpoint (`engine = "bedrock"`, optionally
//! recording) or by recordings of one (`engine = "replay"`).

use crate::config::{BackingModel, EngineKind, OnMiss, ReplayPace};
use crate::Config;
use anyhow::{bail, Context};
use outcrop_api::Relay;
use outcrop_upstream::{
    BedrockConfig, BedrockUpstream, Credentials, Pace, Recorder, Replay, Upstream,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Whether a backing model is served by a relay rather than an engine.
pub fn is_relay(m: &BackingModel) -> bool {
    matches!(m.engine, EngineKind::Bedrock | EngineKind::Replay)
}

pub fn build(config: &Config) -> anyhow::Result<HashMap<String, Relay>> {
    let mut relays = HashMap::new();
    for (name, m) in config.backing_models.iter().filter(|(_, m)| is_relay(m)) {
        let upstream: Arc<dyn Upstream> = match m.engine {
            EngineKind::Bedrock => {
                let upstream = bedrock(name, m)?;
                match &m.record {
                    Some(dir) => Arc::new(Recorder::new(upstream, dir.clone())),
                    None => upstream,
                }
            }
            _ => {
                let Some(dir) = m.cassettes.clone() else {
                    bail!("[backing_models.{name}] engine = \"replay\" needs cassettes = \"DIR\" (a directory of recordings)");
                };
                let fallback = match m.on_miss {
                    OnMiss::Error => None,
                    OnMiss::Upstream => {
                        Some(Arc::new(Recorder::new(bedrock(name, m)?, dir.clone()))
                            as Arc<dyn Upstream>)
                    }
                };
                let pace = match m.pace {
                    ReplayPace::Fast => Pace::Fast,
                    ReplayPace::Recorded => Pace::Recorded,
                };
                Arc::new(Replay::new(dir, pace, fallback))
            }
        };
        tracing::info!(model = %name, upstream = %upstream.describe(), "backing model served upstream");
        relays.insert(
            name.clone(),
            Relay {
                upstream,
                model: m.model.clone(),
            },
        );
    }
    Ok(relays)
}

fn env(name: &str, var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| {
        format!("[backing_models.{name}]: the environment variable {var} is not set")
    })
}

/// A Bedrock runtime endpoint and the credentials calls to it are signed with.
fn bedrock(name: &str, m: &BackingModel) -> anyhow::Result<Arc<dyn Upstream>> {
    let Some(url) = m.url.clone() else {
        bail!("[backing_models.{name}] needs url = \"https://bedrock-runtime.REGION.amazonaws.com\" (or another Outcrop's URL)");
    };
    let credentials = match &m.api_key_env {
        Some(var) => Credentials::ApiKey(env(name, var)?),
        None => Credentials::SigV4 {
            access_key_id: env(
                name,
                m.access_key_id_env
                    .as_deref()
                    .unwrap_or("AWS_ACCESS_KEY_ID"),
            )?,
            secret_access_key: env(
                name,
                m.secret_access_key_env
                    .as_deref()
                    .unwrap_or("AWS_SECRET_ACCESS_KEY"),
            )?,
            session_token: std::env::var(
                m.session_token_env
                    .as_deref()
                    .unwrap_or("AWS_SESSION_TOKEN"),
            )
            .ok(),
        },
    };
    let region = m.region.clone().unwrap_or_else(|| region_of(&url));
    let upstream = BedrockUpstream::new(BedrockConfig {
        url,
        region,
        credentials,
        connect_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(m.timeout_secs.unwrap_or(600)),
    })
    .map_err(|e| anyhow::anyhow!("[backing_models.{name}] {e}"))?;
    Ok(Arc::new(upstream))
}

/// The region in a Bedrock endpoint's host name (`bedrock-runtime.eu-west-1.amazonaws.com`),
/// else `us-east-1`.
fn region_of(url: &str) -> String {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [service, region, ..] if service.starts_with("bedrock") && region.contains('-') => {
            (*region).to_owned()
        }
        _ => "us-east-1".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_read_from_an_aws_endpoint() {
        assert_eq!(
            region_of("https://bedrock-runtime.eu-west-1.amazonaws.com"),
            "eu-west-1"
        );
        assert_eq!(region_of("http://127.0.0.1:4680"), "us-east-1");
        assert_eq!(
            region_of("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com/"),
            "us-gov-west-1"
        );
    }
}
