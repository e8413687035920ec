//! Model access, as the Bedrock console's "Model access" page drives it through the control
//! plane: agreement offers, agreements, the use-case form Anthropic requires, availability,
//! and the check every runtime call passes (`AccessDeniedException` without access).

use crate::{iam, ApiError, Principal, Service};
use outcrop_models::CatalogEntry;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const ACCESS_DENIED: &str = "You don't have access to the model with the specified model ID.";

/// Who may invoke what without asking first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// As on Bedrock: a model needs an agreement (and, for Anthropic, a use-case form).
    #[default]
    Explicit,
    /// Every catalog model is invocable (CI, quick experiments).
    Open,
}

/// Whether the account may invoke the model now.
async fn entitled(state: &Service, account: &str, entry: &CatalogEntry) -> Result<bool, ApiError> {
    if state.access_mode == AccessMode::Open {
        return Ok(true);
    }
    if !state.store.has_agreement(account, &entry.id).await? {
        return Ok(false);
    }
    Ok(!needs_use_case(entry) || state.store.use_case(account).await?.is_some())
}

/// A model's access status for an account, as the CLI, the console and the API report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessStatus {
    /// Invocable.
    Granted,
    /// Agreed, but the Anthropic use-case form is not on file yet.
    UseCaseMissing,
    /// No agreement yet.
    Available,
}

/// An account's agreements and use-case form, read once to answer for many models.
#[derive(Debug, Clone)]
pub struct AccountAccess {
    open: bool,
    agreements: std::collections::HashSet<String>,
    use_case: bool,
}

impl AccountAccess {
    pub async fn load(
        store: &dyn outcrop_store::Store,
        account: &str,
        mode: AccessMode,
    ) -> Result<Self, outcrop_store::StoreError> {
        Ok(AccountAccess {
            open: mode == AccessMode::Open,
            agreements: store.agreements(account).await?.into_iter().collect(),
            use_case: store.use_case(account).await?.is_some(),
        })
    }

    /// Whether the account has agreed to the model's offer (always, in open mode).
    pub fn agreed(&self, entry: &CatalogEntry) -> bool {
        self.open || self.agreements.contains(&entry.id)
    }

    pub fn use_case_on_file(&self) -> bool {
        self.use_case
    }

    pub fn status(&self, entry: &CatalogEntry) -> AccessStatus {
        if !self.agreed(entry) {
            AccessStatus::Available
        } else if self.open || !needs_use_case(entry) || self.use_case {
            AccessStatus::Granted
        } else {
            AccessStatus::UseCaseMissing
        }
    }
}

/// Anthropic models need the use-case form on file besides an agreement.
pub fn needs_use_case(entry: &CatalogEntry) -> bool {
    entry.provider.eq_ignore_ascii_case("anthropic")
}

/// The runtime's access check: `AccessDeniedException` unless the account may invoke the model.
pub async fn check_invoke(
    state: &Service,
    principal: &Principal,
    entry: &CatalogEntry,
) -> Result<(), ApiError> {
    if entitled(state, &principal.account_id, entry).await? {
        Ok(())
    } else {
        Err(ApiError::AccessDenied(ACCESS_DENIED.into()))
    }
}

/// The one public offer of a model; its token names the model, so it cannot be replayed for
/// another one.
pub fn offer_token(model_id: &str) -> String {
    let digest = Sha256::digest(format!("outcrop-offer/{model_id}"));
    format!("offer-{}", &hex::encode(digest)[..40])
}

/// Records the account's agreement for a model (the console's "Save" and the API's
/// CreateFoundationModelAgreement) and sends the notification; whether the model is now
/// invocable (Anthropic also needs the use-case form).
pub async fn agree(
    state: &Service,
    principal: &Principal,
    entry: &CatalogEntry,
) -> Result<bool, ApiError> {
    let created = state
        .store
        .create_agreement(&principal.account_id, &entry.id)
        .await?;
    let granted = entitled(state, &principal.account_id, entry).await?;
    if created {
        notify(state, principal, entry, granted);
    }
    Ok(granted)
}

/// Checks and stores the use-case form (a JSON object of 10 to 16384 bytes).
pub async fn submit_use_case(
    state: &Service,
    principal: &Principal,
    form: &[u8],
) -> Result<(), ApiError> {
    if !(10..=16384).contains(&form.len()) {
        return Err(ApiError::Validation(format!(
            "1 validation error detected: Value at 'formData' failed to satisfy constraint: Member must have length between 10 and 16384, found {}",
            form.len()
        )));
    }
    if !matches!(serde_json::from_slice::<Value>(form), Ok(Value::Object(_))) {
        return Err(ApiError::Validation(
            "The use case form must be a JSON object.".into(),
        ));
    }
    state
        .store
        .put_use_case(&principal.account_id, form)
        .await?;
    Ok(())
}

/// A model's availability to a caller (GetFoundationModelAvailability).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    /// The account agreed to the model's offer.
    pub agreed: bool,
    /// The account may invoke the model (agreement, and the use-case form where needed).
    pub entitled: bool,
    /// The caller's policies allow invoking it.
    pub authorized: bool,
}

/// What GetFoundationModelAvailability reports for `entry` and the caller.
pub async fn availability(
    state: &Service,
    principal: &Principal,
    entry: &CatalogEntry,
) -> Result<Availability, ApiError> {
    let access = AccountAccess::load(
        state.store.as_ref(),
        &principal.account_id,
        state.access_mode,
    )
    .await?;
    let model_arn = format!(
        "arn:aws:bedrock:{}::foundation-model/{}",
        principal.region, entry.id
    );
    let permissions = iam::Permissions::load(state, principal).await?;
    Ok(Availability {
        agreed: access.agreed(entry),
        entitled: access.status(entry) == AccessStatus::Granted,
        authorized: permissions.allows("bedrock:InvokeModel", &model_arn),
    })
}

/// CreateFoundationModelAgreement: the offer token must be the model's own.
pub async fn create_agreement<'s>(
    state: &'s Service,
    principal: &Principal,
    model_id: &str,
    offer: &str,
) -> Result<&'s CatalogEntry, ApiError> {
    let entry = state.catalog_entry(model_id)?;
    if offer != offer_token(&entry.id) {
        return Err(ApiError::Validation(
            "The provided offer token is invalid.".into(),
        ));
    }
    agree(state, principal, entry).await?;
    Ok(entry)
}

/// DeleteFoundationModelAgreement.
pub async fn delete_agreement(
    state: &Service,
    principal: &Principal,
    model_id: &str,
) -> Result<(), ApiError> {
    let entry = state.catalog_entry(model_id)?;
    if !state
        .store
        .delete_agreement(&principal.account_id, &entry.id)
        .await?
    {
        return Err(ApiError::ResourceNotFound(format!(
            "No agreement found for model {}.",
            entry.id
        )));
    }
    Ok(())
}

/// The account's use-case form, as submitted.
pub async fn use_case(state: &Service, principal: &Principal) -> Result<Vec<u8>, ApiError> {
    state
        .store
        .use_case(&principal.account_id)
        .await?
        .ok_or_else(|| ApiError::ResourceNotFound("No use case found for this account.".into()))
}

/// Sends RFC 5322 messages somewhere (SMTP); implemented by the server. Sending happens in
/// the background: a request never waits for a mail server.
pub trait Mailer: Send + Sync {
    fn send(&self, message: Vec<u8>);
}

/// The approval e-mail of the Bedrock console: an RFC 5322 message in the outbox, and sent
/// through the mailer when one is configured.
fn notify(state: &Service, principal: &Principal, entry: &CatalogEntry, granted: bool) {
    if let Some(outbox) = &state.outbox {
        let message = write_access_notification(
            outbox,
            &principal.account_id,
            &principal.arn,
            entry,
            granted,
        );
        if let Some(mailer) = &state.mailer {
            mailer.send(message.into_bytes());
        }
    }
}

/// Writes the access notification for `entry` to `outbox` (also used by `outcrop access`) and
/// returns the message.
pub fn write_access_notification(
    outbox: &Path,
    account_id: &str,
    recipient_arn: &str,
    entry: &CatalogEntry,
    granted: bool,
) -> String {
    let now = chrono::Utc::now();
    let (subject, text) = if granted {
        (
            format!("Access granted: {} on Amazon Bedrock (Outcrop)", entry.name),
            format!(
                "You now have access to {} ({}). It can be invoked at once.",
                entry.name, entry.id
            ),
        )
    } else {
        (
            format!("Agreement recorded: {} on Amazon Bedrock (Outcrop)", entry.name),
            format!(
                "The agreement for {} ({}) is recorded. Submit the use case form (PutUseCaseForModelAccess) to use it.",
                entry.name, entry.id
            ),
        )
    };
    let message = format!(
        "From: Outcrop <no-reply@outcrop.localhost>\r\nTo: account {account_id} <{recipient_arn}>\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{id}@outcrop.localhost>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
        date = now.to_rfc2822(),
        id = uuid::Uuid::new_v4(),
    );
    let file: PathBuf = outbox.join(format!(
        "{}-{}.eml",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        entry.id.replace(':', "_")
    ));
    if let Err(e) = std::fs::create_dir_all(outbox).and_then(|()| std::fs::write(&file, &message)) {
        tracing::warn!(error = %e, path = %file.display(), "could not write the access notification");
    } else {
        tracing::info!(path = %file.display(), model = %entry.id, granted, "access notification written");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_tokens_are_per_model() {
        assert_eq!(
            offer_token("anthropic.claude-v2"),
            offer_token("anthropic.claude-v2")
        );
        assert_ne!(
            offer_token("anthropic.claude-v2"),
            offer_token("anthropic.claude-v2:1")
        );
        assert!(offer_token("x").starts_with("offer-"));
    }
}
