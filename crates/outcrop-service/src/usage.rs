//! Usage reports: an account's ledger summed by model, principal or day over a period.

use crate::{iam, ApiError, Principal, Service};
pub use outcrop_store::{GroupBy, Report, Totals, UsageRecord};

/// The caller's account's usage between `since` and `until` (RFC 3339, either open), summed
/// by `group_by` in the store: `outcrop:GetUsageReport` on `*`.
pub async fn report(
    state: &Service,
    principal: &Principal,
    since: Option<&str>,
    until: Option<&str>,
    group_by: GroupBy,
) -> Result<Report, ApiError> {
    iam::authorize_action(
        state,
        principal,
        "outcrop:GetUsageReport",
        &["*".to_owned()],
    )
    .await?;
    Ok(state
        .store
        .usage_report(Some(&principal.account_id), since, until, group_by)
        .await?)
}
