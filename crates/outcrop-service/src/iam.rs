//! IAM-style identity policies: parsing a policy document and deciding a request, with IAM's
//! rules: an explicit `Deny` wins, otherwise some `Allow` must match, otherwise the request
//! is implicitly denied. `Action` matches case-insensitively and `Resource` case-sensitively,
//! both with `*` and `?` wildcards. The account root is not subject to policies.

use crate::{ApiError, Principal, Resolved, Service};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// A validated policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
}

/// The outcome of evaluating policies for one action on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ImplicitDeny,
    ExplicitDeny,
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{what} entries must be strings"))
            })
            .collect(),
        _ => Err(format!(
            "each statement needs {what} (a string or a list of strings)"
        )),
    }
}

impl PolicyDocument {
    /// Parses `{"Version": "2012-10-17", "Statement": [...]}` (a single statement object is
    /// accepted too, as IAM does).
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => return Err("the policy needs a Statement list".into()),
        };
        if let Some(v) = doc.get("Version").and_then(Value::as_str) {
            if v != "2012-10-17" && v != "2008-10-17" {
                return Err(format!("unknown policy Version {v}"));
            }
        }
        let statements = statements
            .iter()
            .map(|s| {
                let effect = match s.get("Effect").and_then(Value::as_str) {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return Err("each statement needs Effect \"Allow\" or \"Deny\"".to_owned()),
                };
                Ok(Statement {
                    effect,
                    actions: strings(s.get("Action"), "Action")?,
                    resources: strings(s.get("Resource"), "Resource")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(PolicyDocument { statements })
    }
}

/// Whether `value` matches `pattern` with `*` (any run) and `?` (one character).
fn wildcard(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Decides `action` on every one of `resources` (all must be allowed).
pub fn evaluate(policies: &[PolicyDocument], action: &str, resources: &[String]) -> Decision {
    let action = action.to_ascii_lowercase();
    let mut allowed = vec![false; resources.len()];
    for s in policies.iter().flat_map(|p| &p.statements) {
        if !s
            .actions
            .iter()
            .any(|a| wildcard(&a.to_ascii_lowercase(), &action))
        {
            continue;
        }
        for (i, r) in resources.iter().enumerate() {
            if s.resources.iter().any(|p| wildcard(p, r)) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed[i] = true,
                }
            }
        }
    }
    if allowed.iter().all(|a| *a) {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// The ARNs a call on a resolved model is authorized against: the model's, and first the
/// inference profile's when it came through one (both must be allowed, as on AWS).
pub fn model_arns(resolved: &Resolved<'_>, principal: &Principal) -> Vec<String> {
    if resolved.is_imported() {
        // An imported model's id is its ARN.
        return vec![resolved.entry.id.clone()];
    }
    let model = format!(
        "arn:aws:bedrock:{}::foundation-model/{}",
        principal.region, resolved.entry.id
    );
    match resolved.geography {
        None => vec![model],
        Some(geo) => vec![
            format!(
                "arn:aws:bedrock:{}:{}:inference-profile/{geo}.{}",
                principal.region, principal.account_id, resolved.entry.id
            ),
            model,
        ],
    }
}

/// The user name in a user ARN (`arn:aws:iam::ACCOUNT:user/NAME`); `None` for the root.
fn user_name(arn: &str) -> Option<&str> {
    arn.split_once(":user/")
        .map(|(_, name)| name.rsplit('/').next().unwrap_or(name))
}

/// Refuses `action` on `resources` unless the principal's policies allow it: the check behind
/// every operation, and behind the console's own actions (`iam:CreateUser`, ...).
pub async fn authorize_action(
    state: &Service,
    principal: &Principal,
    action: &str,
    resources: &[String],
) -> Result<(), ApiError> {
    let Some(policies) = Permissions::load(state, principal).await?.policies else {
        return Ok(()); // the account root
    };
    let decision = evaluate(&policies, action, resources);
    let resource = resources.last().cloned().unwrap_or_default();
    let why = match decision {
        Decision::Allow => return Ok(()),
        Decision::ExplicitDeny => " with an explicit deny in an identity-based policy".to_owned(),
        Decision::ImplicitDeny => {
            format!(" because no identity-based policy allows the {action} action")
        }
    };
    tracing::info!(principal = %principal.arn, action, resource = %resource, ?decision, "denied by policy");
    Err(ApiError::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource}{why}",
        principal.arn
    )))
}

/// A principal's policies, read once to decide many actions (what the console shows).
pub struct Permissions {
    /// `None`: the account root, allowed everything.
    policies: Option<Vec<PolicyDocument>>,
}

impl Permissions {
    pub async fn load(state: &Service, principal: &Principal) -> Result<Self, ApiError> {
        let Some(user) = user_name(&principal.arn) else {
            return Ok(Permissions { policies: None });
        };
        let documents = state
            .store
            .user_policies(&principal.account_id, user)
            .await?;
        let policies = documents
            .iter()
            .filter_map(|(name, text)| {
                PolicyDocument::parse(text)
                    .map_err(|e| tracing::warn!(policy = %name, error = %e, "stored policy does not parse; ignored"))
                    .ok()
            })
            .collect();
        Ok(Permissions {
            policies: Some(policies),
        })
    }

    /// Whether `action` on `resource` is allowed.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.policies
            .as_ref()
            .is_none_or(|p| evaluate(p, action, &[resource.to_owned()]) == Decision::Allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> PolicyDocument {
        PolicyDocument::parse(s).unwrap()
    }

    const MODEL: &str = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2";

    #[test]
    fn wildcards() {
        assert!(wildcard("bedrock:*", "bedrock:invokemodel"));
        assert!(wildcard("bedrock:Invoke?odel", "bedrock:InvokeModel"));
        assert!(wildcard(
            "arn:aws:bedrock:*::foundation-model/anthropic.*",
            MODEL
        ));
        assert!(!wildcard(
            "arn:aws:bedrock:*::foundation-model/meta.*",
            MODEL
        ));
        assert!(wildcard("*", ""));
        assert!(!wildcard("a", ""));
    }

    #[test]
    fn explicit_deny_wins_and_silence_denies() {
        let allow_all = doc(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}"#,
        );
        let deny_claude = doc(
            r#"{"Statement": {"Effect": "Deny", "Action": ["bedrock:InvokeModel"], "Resource": "arn:aws:bedrock:*::foundation-model/anthropic.claude-v2"}}"#,
        );
        let r = vec![MODEL.to_owned()];
        assert_eq!(
            evaluate(std::slice::from_ref(&allow_all), "bedrock:InvokeModel", &r),
            Decision::Allow
        );
        assert_eq!(
            evaluate(
                &[allow_all.clone(), deny_claude.clone()],
                "bedrock:InvokeModel",
                &r
            ),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(
                &[allow_all, deny_claude],
                "bedrock:InvokeModel",
                &["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2:1".to_owned()]
            ),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&[], "bedrock:InvokeModel", &r),
            Decision::ImplicitDeny
        );
        // Every resource must be allowed (an inference profile and its model).
        let only_model = doc(&format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": "{MODEL}"}}]}}"#
        ));
        assert_eq!(
            evaluate(
                &[only_model],
                "bedrock:InvokeModel",
                &[
                    "arn:aws:bedrock:us-east-1:1:inference-profile/us.x".to_owned(),
                    MODEL.to_owned()
                ]
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn bad_documents() {
        assert!(PolicyDocument::parse("{").is_err());
        assert!(PolicyDocument::parse(
            r#"{"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}"#
        )
        .is_err());
        assert!(
            PolicyDocument::parse(r#"{"Statement": [{"Effect": "Allow", "Resource": "*"}]}"#)
                .is_err()
        );
        assert!(PolicyDocument::parse(r#"{"Version": "2099-01-01", "Statement": []}"#).is_err());
    }

    #[test]
    fn user_names_from_arns() {
        assert_eq!(
            user_name("arn:aws:iam::000000000000:user/alice"),
            Some("alice")
        );
        assert_eq!(
            user_name("arn:aws:iam::000000000000:user/team/bob"),
            Some("bob")
        );
        assert_eq!(user_name("arn:aws:iam::000000000000:root"), None);
    }
}
