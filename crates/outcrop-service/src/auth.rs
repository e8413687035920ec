//! SigV4 authentication of a request against the store's credentials.

use crate::{ApiError, Origin, Service};
use http::request::Parts;
use outcrop_sigv4::{check_headers, hash_payload, verify, Authorization, RequestParts, SigV4Error};
use outcrop_store::Credential;

/// Credential-scope services accepted: boto3 signs both clients as `bedrock`; the anthropic
/// SDK's mantle client signs as `bedrock-mantle`.
const SERVICES: &[&str] = &["bedrock", "bedrock-runtime", "bedrock-mantle"];

/// Who made a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub arn: String,
    pub access_key_id: String,
    /// The region from the credential scope: every region is served by this instance.
    pub region: String,
}

/// Authentication settings that depend on how the server was started.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthPolicy {
    /// Accept loopback-only keys (the development pair) from any client, not only from a
    /// loopback client on a loopback listener.
    pub allow_dev_key_anywhere: bool,
}

impl AuthPolicy {
    /// Whether `credential` may be used by this request: a loopback-only key (the development
    /// key, the account root) only from this machine, unless configured otherwise.
    pub fn admits(
        &self,
        credential: &Credential,
        origin: Option<&Origin>,
        headers: &http::HeaderMap,
    ) -> bool {
        if !credential.loopback_only || self.allow_dev_key_anywhere {
            return true;
        }
        let local = origin.is_some_and(|o| o.is_local(headers));
        if !local {
            tracing::warn!(
                access_key_id = %credential.access_key_id,
                ?origin,
                "development key refused: the request does not come from this machine"
            );
        }
        local
    }
}

/// What the headers alone established: a Bedrock API key's principal, or a SigV4 request
/// whose key exists and may be used here, and whose scope and date are current. Only then is
/// the body read (at most 25 MB) for the signature: an unknown key or a stale date costs the
/// server no body.
pub enum Screened {
    Principal(Principal),
    SigV4 {
        auth: Authorization,
        credential: Credential,
    },
}

/// Checks what the headers say (see [`Screened`]).
pub async fn screen(state: &Service, parts: &Parts) -> Result<Screened, ApiError> {
    let (store, policy) = (state.store.as_ref(), state.auth);
    // Anthropic's clients send their key as `x-api-key`; on that path a Bedrock API key may
    // come so.
    let api_key = parts
        .headers
        .get("x-api-key")
        .filter(|_| parts.uri.path().starts_with("/anthropic/"));
    if let (None, Some(key)) = (parts.headers.get("authorization"), api_key) {
        let key = key
            .to_str()
            .map_err(|_| ApiError::InvalidApiKey(crate::api_keys::API_KEY_FORMAT.into()))?;
        return crate::api_keys::authenticate_bearer(state, parts, key)
            .await
            .map(Screened::Principal);
    }
    let header = parts
        .headers
        .get("authorization")
        .ok_or(SigV4Error::Missing)?;
    let header = header
        .to_str()
        .map_err(|_| SigV4Error::Incomplete("Authorization header is not valid ASCII.".into()))?;
    if let Some(token) = header.strip_prefix("Bearer ") {
        return crate::api_keys::authenticate_bearer(state, parts, token)
            .await
            .map(Screened::Principal);
    }
    let auth = Authorization::parse(header)?;
    let Some(credential) = store.credential(&auth.credential.access_key_id).await? else {
        return Err(ApiError::UnrecognizedClient);
    };
    if !policy.admits(
        &credential,
        parts.extensions.get::<Origin>(),
        &parts.headers,
    ) {
        return Err(ApiError::UnrecognizedClient);
    }
    let sent_token = parts
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    if sent_token != credential.session_token.as_deref() {
        return Err(ApiError::UnrecognizedClient);
    }
    check_headers(&auth, &parts.headers, SERVICES, chrono::Utc::now())?;
    Ok(Screened::SigV4 { auth, credential })
}

/// Verifies the request's signature over its body and returns its principal.
pub fn authenticate(screened: Screened, parts: &Parts, body: &[u8]) -> Result<Principal, ApiError> {
    let (auth, credential) = match screened {
        Screened::Principal(p) => return Ok(p),
        Screened::SigV4 { auth, credential } => (auth, credential),
    };
    let payload_hash = hash_payload(body);
    let request = RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        payload_hash: &payload_hash,
    };
    let verified = verify(
        &auth,
        &credential.secret,
        &request,
        SERVICES,
        chrono::Utc::now(),
    )?;
    Ok(Principal {
        account_id: credential.account_id,
        arn: credential.principal_arn,
        access_key_id: verified.access_key_id,
        region: verified.region,
    })
}
