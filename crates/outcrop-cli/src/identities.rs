//! `outcrop users` and `outcrop keys`: IAM-style users and their access keys, printed in the
//! shape `aws iam create-user` / `create-access-key` print.

use anyhow::{bail, Context};
use outcrop_server::Config;
use outcrop_store::{Store, DEFAULT_ACCOUNT};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Create a user in the default account.
    Create {
        /// User name (letters, digits and +=,.@_-, up to 64 characters, as IAM allows)
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Issue an access key pair for a user; the secret is shown only this once.
    Create {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(clap::Args)]
pub struct DataDir {
    /// Data directory [default: the platform data dir]
    #[arg(long, env = "OUTCROP_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    async fn store(self) -> anyhow::Result<outcrop_store::SqliteStore> {
        let dir = Config {
            data_dir: self.data_dir,
            ..Config::default()
        }
        .data_dir()?;
        outcrop_server::open_store(&dir).await
    }
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub async fn users(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create { name, data } => {
            if !valid_user_name(&name) {
                bail!("invalid user name {name:?}: use letters, digits and +=,.@_- (at most 64)");
            }
            let store = data.store().await?;
            let Some(arn) = store.create_user(DEFAULT_ACCOUNT, &name).await? else {
                bail!("user {name} already exists");
            };
            let user = json!({ "User": { "UserName": name, "Arn": arn, "CreateDate": now() } });
            println!("{}", serde_json::to_string_pretty(&user)?);
        }
    }
    Ok(())
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { user, data } => {
            let store = data.store().await?;
            let key = store
                .create_access_key(DEFAULT_ACCOUNT, &user)
                .await?
                .with_context(|| {
                    format!("no user {user}: create it with `outcrop users create {user}`")
                })?;
            let out = json!({ "AccessKey": {
                "UserName": user,
                "AccessKeyId": key.access_key_id,
                "Status": "Active",
                "SecretAccessKey": key.secret.expose(),
                "CreateDate": now(),
            }});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_names_follow_iam() {
        assert!(super::valid_user_name("alice.smith@example_1"));
        assert!(!super::valid_user_name(""));
        assert!(!super::valid_user_name("a b"));
        assert!(!super::valid_user_name(&"a".repeat(65)));
    }
}
