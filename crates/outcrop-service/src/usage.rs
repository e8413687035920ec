//! Usage reports: an account's ledger summed by model, principal or day over a period.

use crate::{ApiError, Principal, Service};
pub use outcrop_store::{GroupBy, Report};

/// The caller's account's usage between `since` and `until` (RFC 3339, either open).
pub async fn report(
    state: &Service,
    principal: &Principal,
    since: Option<&str>,
    until: Option<&str>,
    group_by: GroupBy,
) -> Result<Report, ApiError> {
    let records = state
        .store
        .usage_records(Some(&principal.account_id), since, until)
        .await?;
    Ok(outcrop_store::report(&records, group_by))
}
