//! `outcrop users`, `keys`, `policies` and `access`: identities and model access of the
//! default account, worked on the data directory directly (safe while the server runs:
//! SQLite in WAL mode serialises writers). Creations print what `aws iam` prints; lists print a
//! table, or JSON with `--format json`.

use anyhow::{bail, Context};
use outcrop_api::identities::{valid_name, DEFAULT_POLICY, DEFAULT_POLICY_NAME};
use outcrop_server::Config;
use outcrop_store::{Store, DEFAULT_ACCOUNT};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    data: DataDir,
}

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Create a user in the default account (with a Bedrock full-access policy unless
    /// --no-default-policy).
    Create {
        /// User name (letters, digits and +=,.@_-, up to 64 characters, as IAM allows)
        name: String,
        /// Attach no policy: the user may do nothing until `outcrop policies put`
        #[arg(long)]
        no_default_policy: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// List the users.
    List(ListArgs),
    /// Delete a user with its access keys and policies.
    Delete {
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
    /// List access keys (never their secrets).
    List(ListArgs),
    /// Delete an access key.
    Delete {
        access_key_id: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(clap::Subcommand)]
pub enum PoliciesCommand {
    /// Attach (or replace) a user's inline IAM policy.
    Put {
        #[arg(long)]
        user: String,
        /// Policy name
        #[arg(long)]
        name: String,
        /// The policy document: a JSON file, or - for standard input
        #[arg(long)]
        document: PathBuf,
        #[command(flatten)]
        data: DataDir,
    },
    /// List a user's policies.
    List {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(clap::Subcommand)]
pub enum AccessCommand {
    /// The catalog's models and whether the account may invoke them.
    List(ListArgs),
    /// Grant access to a model (an agreement; Anthropic also needs `access request`).
    Grant {
        model: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Revoke access to a model (delete its agreement).
    Revoke {
        model: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Submit the use-case form Anthropic models need, then grant the model.
    Request {
        model: String,
        /// The form as JSON (companyName, companyWebsite, intendedUsers, industryOption,
        /// useCases), as the console collects it
        #[arg(long)]
        use_case: PathBuf,
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
    fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(Config {
            data_dir: self.data_dir.clone(),
            ..Config::default()
        }
        .data_dir()?)
    }

    pub async fn store(&self) -> anyhow::Result<outcrop_store::SqliteStore> {
        outcrop_server::open_store(&self.dir()?).await
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints rows as an aligned table (first row: headers) or as a JSON list of objects.
fn print_rows(
    format: Format,
    key: &str,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> anyhow::Result<()> {
    if format == Format::Json {
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                Value::Object(
                    headers
                        .iter()
                        .zip(r)
                        .map(|(h, v)| ((*h).to_owned(), json!(v)))
                        .collect(),
                )
            })
            .collect();
        return print_json(&json!({ key: items }));
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    Ok(())
}

fn read_document(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub async fn users(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create {
            name,
            no_default_policy,
            data,
        } => {
            if !valid_name(&name) {
                bail!("invalid user name {name:?}: use letters, digits and +=,.@_- (at most 64)");
            }
            let store = data.store().await?;
            let Some(arn) = store.create_user(DEFAULT_ACCOUNT, &name).await? else {
                bail!("user {name} already exists");
            };
            if !no_default_policy {
                store
                    .put_user_policy(DEFAULT_ACCOUNT, &name, DEFAULT_POLICY_NAME, DEFAULT_POLICY)
                    .await?;
            }
            print_json(&json!({ "User": { "UserName": name, "Arn": arn, "CreateDate": now() } }))?;
        }
        UsersCommand::List(args) => {
            let users = args.data.store().await?.list_users(DEFAULT_ACCOUNT).await?;
            let rows = users
                .into_iter()
                .map(|u| vec![u.user_name, u.arn, u.created_at])
                .collect();
            print_rows(
                args.format,
                "Users",
                &["UserName", "Arn", "CreateDate"],
                rows,
            )?;
        }
        UsersCommand::Delete { name, data } => {
            if !data
                .store()
                .await?
                .delete_user(DEFAULT_ACCOUNT, &name)
                .await?
            {
                bail!("no user {name}");
            }
            eprintln!("deleted user {name} with its access keys and policies");
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
            print_json(&json!({ "AccessKey": {
                "UserName": user,
                "AccessKeyId": key.access_key_id,
                "Status": "Active",
                "SecretAccessKey": key.secret.expose(),
                "CreateDate": now(),
            }}))?;
        }
        KeysCommand::List(args) => {
            let keys = args
                .data
                .store()
                .await?
                .list_access_keys(DEFAULT_ACCOUNT)
                .await?;
            let rows = keys
                .into_iter()
                .map(|k| {
                    let note = if k.loopback_only { "loopback only" } else { "" };
                    vec![
                        k.access_key_id,
                        k.principal_arn,
                        k.created_at,
                        note.to_owned(),
                    ]
                })
                .collect();
            print_rows(
                args.format,
                "AccessKeyMetadata",
                &["AccessKeyId", "Principal", "CreateDate", "Note"],
                rows,
            )?;
        }
        KeysCommand::Delete {
            access_key_id,
            data,
        } => {
            if !data
                .store()
                .await?
                .delete_access_key(DEFAULT_ACCOUNT, &access_key_id)
                .await?
            {
                bail!("no access key {access_key_id}");
            }
            eprintln!("deleted access key {access_key_id}");
        }
    }
    Ok(())
}

pub async fn policies(command: PoliciesCommand) -> anyhow::Result<()> {
    match command {
        PoliciesCommand::Put {
            user,
            name,
            document,
            data,
        } => {
            if !valid_name(&name) {
                bail!("invalid policy name {name:?}: use letters, digits and +=,.@_- (at most 64)");
            }
            let text = read_document(&document)?;
            outcrop_api::PolicyDocument::parse(&text)
                .map_err(|e| anyhow::anyhow!("the policy document is not valid: {e}"))?;
            if !data
                .store()
                .await?
                .put_user_policy(DEFAULT_ACCOUNT, &user, &name, &text)
                .await?
            {
                bail!("no user {user}");
            }
            eprintln!("policy {name} attached to {user}");
        }
        PoliciesCommand::List { user, list } => {
            let policies = list
                .data
                .store()
                .await?
                .user_policies(DEFAULT_ACCOUNT, &user)
                .await?;
            if list.format == Format::Json {
                let items: Vec<Value> = policies
                    .iter()
                    .map(|(n, d)| json!({ "PolicyName": n, "PolicyDocument": serde_json::from_str::<Value>(d).unwrap_or(Value::Null) }))
                    .collect();
                return print_json(&json!({ "UserName": user, "Policies": items }));
            }
            let rows = policies
                .into_iter()
                .map(|(n, d)| {
                    let compact = serde_json::from_str::<Value>(&d)
                        .map(|v| v.to_string())
                        .unwrap_or(d);
                    vec![n, compact]
                })
                .collect();
            print_rows(
                list.format,
                "Policies",
                &["PolicyName", "PolicyDocument"],
                rows,
            )?;
        }
    }
    Ok(())
}

fn catalog() -> anyhow::Result<outcrop_models::Catalog> {
    Ok(outcrop_models::Catalog::builtin_with(&Default::default())?)
}

pub async fn access(command: AccessCommand) -> anyhow::Result<()> {
    let catalog = catalog()?;
    let entry = |model: &str| {
        catalog.get(model).with_context(|| {
            format!("{model} is not in the catalog (see `outcrop models list --catalog`)")
        })
    };
    match command {
        AccessCommand::List(args) => {
            let store = args.data.store().await?;
            let access = outcrop_api::AccountAccess::load(
                &store,
                DEFAULT_ACCOUNT,
                outcrop_api::AccessMode::Explicit,
            )
            .await?;
            let rows = catalog
                .entries()
                .iter()
                .map(|e| {
                    let status = match access.status(e) {
                        outcrop_api::AccessStatus::Granted => "AUTHORIZED",
                        outcrop_api::AccessStatus::UseCaseMissing => {
                            "AGREED (use case form missing)"
                        }
                        outcrop_api::AccessStatus::Available => "NOT_AUTHORIZED",
                    };
                    vec![e.id.clone(), e.provider.clone(), status.to_owned()]
                })
                .collect();
            print_rows(
                args.format,
                "ModelAccess",
                &["ModelId", "Provider", "Status"],
                rows,
            )?;
        }
        AccessCommand::Grant { model, data } => {
            let e = entry(&model)?;
            let store = data.store().await?;
            if outcrop_api::needs_use_case(e) && store.use_case(DEFAULT_ACCOUNT).await?.is_none() {
                bail!("{model} needs the use-case form first: outcrop access request {model} --use-case FORM.json");
            }
            grant(&store, &data, e).await?;
        }
        AccessCommand::Request {
            model,
            use_case,
            data,
        } => {
            let e = entry(&model)?;
            let form = read_document(&use_case)?;
            let parsed: Value =
                serde_json::from_str(&form).context("the use-case form is not JSON")?;
            for field in [
                "companyName",
                "companyWebsite",
                "intendedUsers",
                "industryOption",
                "useCases",
            ] {
                if parsed.get(field).is_none() {
                    bail!("the use-case form lacks {field}");
                }
            }
            let store = data.store().await?;
            store.put_use_case(DEFAULT_ACCOUNT, form.as_bytes()).await?;
            grant(&store, &data, e).await?;
        }
        AccessCommand::Revoke { model, data } => {
            entry(&model)?;
            if !data
                .store()
                .await?
                .delete_agreement(DEFAULT_ACCOUNT, &model)
                .await?
            {
                bail!("the account has no access to {model}");
            }
            eprintln!("access to {model} revoked");
        }
    }
    Ok(())
}

/// `outcrop models list --catalog`.
pub fn print_catalog(format: Format) -> anyhow::Result<()> {
    let rows = catalog()?
        .entries()
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.provider.clone(),
                e.name.clone(),
                e.format.clone(),
                e.backing_model.clone(),
                e.input_price_per_1k.clone(),
                e.output_price_per_1k.clone(),
                e.inference_profiles.join(","),
            ]
        })
        .collect();
    print_rows(
        format,
        "Models",
        &[
            "ModelId",
            "Provider",
            "Name",
            "Format",
            "BackingModel",
            "InputPer1k",
            "OutputPer1k",
            "Profiles",
        ],
        rows,
    )
}

async fn grant(
    store: &outcrop_store::SqliteStore,
    data: &DataDir,
    e: &outcrop_models::CatalogEntry,
) -> anyhow::Result<()> {
    store.create_agreement(DEFAULT_ACCOUNT, &e.id).await?;
    outcrop_api::write_access_notification(
        &data.dir()?.join("outbox"),
        DEFAULT_ACCOUNT,
        &format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root"),
        e,
        true,
    );
    eprintln!("access to {} granted", e.id);
    Ok(())
}
