//! Users, access keys and inline policies as an operator manages them from the console,
//! authorized with IAM's own action names (`iam:CreateUser`, ...) on the user's ARN. The CLI
//! works on the store directly and shares the names, defaults and checks here.

use crate::iam::authorize_action;
use crate::iam::PolicyDocument;
use crate::{ApiError, Principal, Service};
use outcrop_store::{user_arn, AccessKeyRecord, NewAccessKey, UserRecord};

/// A new user's policy unless told otherwise: every Bedrock action, like AWS's managed
/// AmazonBedrockFullAccess policy. Without any policy IAM denies everything.
pub const DEFAULT_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}"#;
pub const DEFAULT_POLICY_NAME: &str = "BedrockFullAccess";

/// IAM's rule for user and policy names: letters, digits and `+=,.@_-`, 1 to 64 characters
/// (IAM allows 128 for policy names; one rule is simpler and no narrower in practice).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn no_such_user(name: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("The user with name {name} cannot be found."))
}

async fn allow(state: &Service, p: &Principal, action: &str, user: &str) -> Result<(), ApiError> {
    authorize_action(state, p, action, &[user_arn(&p.account_id, user)]).await
}

/// Creates a user (with the default policy when asked); returns its ARN.
pub async fn create_user(
    state: &Service,
    p: &Principal,
    name: &str,
    default_policy: bool,
) -> Result<String, ApiError> {
    if !valid_name(name) {
        return Err(ApiError::Validation(format!(
            "The user name {name:?} is not valid: use letters, digits and +=,.@_- (1 to 64 characters)."
        )));
    }
    allow(state, p, "iam:CreateUser", name).await?;
    let Some(arn) = state.store.create_user(&p.account_id, name).await? else {
        return Err(ApiError::Validation(format!(
            "User with name {name} already exists."
        )));
    };
    if default_policy {
        allow(state, p, "iam:PutUserPolicy", name).await?;
        state
            .store
            .put_user_policy(&p.account_id, name, DEFAULT_POLICY_NAME, DEFAULT_POLICY)
            .await?;
    }
    tracing::info!(by = %p.arn, user = %arn, "user created");
    Ok(arn)
}

/// The account's users (`iam:ListUsers`).
pub async fn list_users(state: &Service, p: &Principal) -> Result<Vec<UserRecord>, ApiError> {
    allow(state, p, "iam:ListUsers", "*").await?;
    Ok(state.store.list_users(&p.account_id).await?)
}

/// The account's access keys, the root's included (`iam:ListAccessKeys`).
pub async fn list_access_keys(
    state: &Service,
    p: &Principal,
) -> Result<Vec<AccessKeyRecord>, ApiError> {
    allow(state, p, "iam:ListAccessKeys", "*").await?;
    Ok(state.store.list_access_keys(&p.account_id).await?)
}

/// A user's inline policies as `(name, document)` (`iam:ListUserPolicies`).
pub async fn user_policies(
    state: &Service,
    p: &Principal,
    user: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    allow(state, p, "iam:ListUserPolicies", user).await?;
    Ok(state.store.user_policies(&p.account_id, user).await?)
}

/// Deletes a user with its keys and policies.
pub async fn delete_user(state: &Service, p: &Principal, name: &str) -> Result<(), ApiError> {
    allow(state, p, "iam:DeleteUser", name).await?;
    if !state.store.delete_user(&p.account_id, name).await? {
        return Err(no_such_user(name));
    }
    tracing::info!(by = %p.arn, user = %name, "user deleted");
    Ok(())
}

/// Issues an access key pair for a user; its secret is shown once and never again.
pub async fn create_access_key(
    state: &Service,
    p: &Principal,
    user: &str,
) -> Result<NewAccessKey, ApiError> {
    allow(state, p, "iam:CreateAccessKey", user).await?;
    let key = state
        .store
        .create_access_key(&p.account_id, user)
        .await?
        .ok_or_else(|| no_such_user(user))?;
    tracing::info!(by = %p.arn, user = %user, key = %key.access_key_id, "access key created");
    Ok(key)
}

/// Deletes an access key of the account, authorized on the user it belongs to.
pub async fn delete_access_key(
    state: &Service,
    p: &Principal,
    access_key_id: &str,
) -> Result<(), ApiError> {
    let keys = state.store.list_access_keys(&p.account_id).await?;
    let not_found = || {
        ApiError::ResourceNotFound(format!(
            "The Access Key with id {access_key_id} cannot be found."
        ))
    };
    let key = keys
        .iter()
        .find(|k| k.access_key_id == access_key_id)
        .ok_or_else(not_found)?;
    authorize_action(
        state,
        p,
        "iam:DeleteAccessKey",
        std::slice::from_ref(&key.principal_arn),
    )
    .await?;
    if !state
        .store
        .delete_access_key(&p.account_id, access_key_id)
        .await?
    {
        return Err(not_found());
    }
    tracing::info!(by = %p.arn, key = %access_key_id, "access key deleted");
    Ok(())
}

/// Stores (replacing) a user's inline policy after checking that it parses.
pub async fn put_user_policy(
    state: &Service,
    p: &Principal,
    user: &str,
    policy_name: &str,
    document: &str,
) -> Result<(), ApiError> {
    if !valid_name(policy_name) {
        return Err(ApiError::Validation(format!(
            "The policy name {policy_name:?} is not valid: use letters, digits and +=,.@_- (1 to 64 characters)."
        )));
    }
    PolicyDocument::parse(document)
        .map_err(|e| ApiError::Validation(format!("The policy document is not valid: {e}")))?;
    allow(state, p, "iam:PutUserPolicy", user).await?;
    if !state
        .store
        .put_user_policy(&p.account_id, user, policy_name, document)
        .await?
    {
        return Err(no_such_user(user));
    }
    tracing::info!(by = %p.arn, user = %user, policy = %policy_name, "policy stored");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_the_default_policy() {
        assert!(super::valid_name("alice+ci@example.com"));
        assert!(!super::valid_name(""));
        assert!(!super::valid_name("a b"));
        assert!(!super::valid_name(&"a".repeat(65)));
        super::PolicyDocument::parse(super::DEFAULT_POLICY).unwrap();
    }
}
