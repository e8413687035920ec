//! `outcrop users`, `keys`, `policies` and `access`: identities and model access of the
//! default account, worked on the data directory directly (safe while the server runs:
//! SQLite in WAL mode serialises writers). Creations print what `aws iam` prints; lists print a
//! table, or JSON with `--format json`.

use anyhow::{bail, Context};
use outcrop_server::Config;
use outcrop_service::api_keys;
use outcrop_service::{
    access, identities, AccessMode, AccessStatus, AccountAccess, Principal, Service,
};
use outcrop_store::DEFAULT_ACCOUNT;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Issue an access key pair for a user, or with --bedrock-api-key a long-term Bedrock API
    /// key (a bearer token for AWS_BEARER_TOKEN_BEDROCK); either is shown only this once.
    Create {
        #[arg(long)]
        user: String,
        /// Issue a long-term Bedrock API key (`ABSK…`) instead of an access key pair
        #[arg(long)]
        bedrock_api_key: bool,
        /// Days until the API key expires (1 to 36600) [default: never]
        #[arg(long, requires = "bedrock_api_key", value_parser = clap::value_parser!(u32).range(1..=36600))]
        expires_in: Option<u32>,
        #[command(flatten)]
        data: DataDir,
    },
    /// List access keys and Bedrock API keys (never their secrets).
    List(ListArgs),
    /// Make a Bedrock API key Active or Inactive.
    Update {
        /// The API key's credential id (ACCA…)
        credential_id: String,
        #[arg(long, value_enum)]
        status: KeyStatus,
        #[command(flatten)]
        data: DataDir,
    },
    /// Seal every secret access key again under a new sealing key. With a key file (SQLite,
    /// or [store] sealing_key_file) the file is replaced (the old one kept beside it as
    /// .previous); with OUTCROP_SEALING_KEY the new key is printed for every replica's
    /// environment.
    RotateSealing {
        #[command(flatten)]
        data: DataDir,
    },
    /// Delete an access key (AKIA…), or revoke a Bedrock API key (ACCA…) for good.
    Delete {
        /// An access key id, or an API key's credential id
        id: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KeyStatus {
    Active,
    Inactive,
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
    /// The database, when not the data directory's SQLite file: `postgres://...` (its
    /// sealing key from OUTCROP_SEALING_KEY, else DATA_DIR/secret.key)
    #[arg(long, env = "OUTCROP_DATABASE_URL")]
    database_url: Option<String>,
}

impl DataDir {
    fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(Config {
            data_dir: self.data_dir.clone(),
            ..Config::default()
        }
        .data_dir()?)
    }

    pub async fn store(&self) -> anyhow::Result<outcrop_store::SqlStore> {
        Ok(outcrop_server::open_store(&self.dir()?, &self.settings())
            .await?
            .0)
    }

    /// `outcrop keys rotate-sealing`: a new key written where it will be found (a file) before
    /// any secret is sealed under it, then every secret re-sealed in one transaction.
    async fn rotate_sealing(&self) -> anyhow::Result<()> {
        let store = self.store().await?;
        let (new, new_hex) = outcrop_store::SecretBox::generate();
        let file = outcrop_server::sealing_key_file(&self.dir()?, &self.settings());
        let staged = file.as_ref().map(|f| f.with_extension("key.new"));
        if let Some(staged) = &staged {
            outcrop_server::tls::write_private(staged, &hex::decode(&new_hex)?)?;
        }
        let rotating = store.with_secrets(new.clone().replacing(store.secrets()));
        let resealed = match rotating.reseal_secrets().await {
            Ok(n) => n,
            Err(e) => {
                if let Some(staged) = &staged {
                    let _ = std::fs::remove_file(staged);
                }
                return Err(e).context("re-sealing the secrets (nothing changed)");
            }
        };
        match (&file, &staged) {
            (Some(file), Some(staged)) => {
                let _ = std::fs::rename(file, file.with_extension("key.previous"));
                std::fs::rename(staged, file)?;
                eprintln!(
                    "re-sealed {resealed} secrets under key {}; {} holds it (the old key is in {}.previous)",
                    new.key_id(),
                    file.display(),
                    file.with_extension("key").display()
                );
            }
            _ => {
                let old = std::env::var("OUTCROP_SEALING_KEY").unwrap_or_default();
                eprintln!(
                    "re-sealed {resealed} secrets under key {}. Give every replica\n  OUTCROP_SEALING_KEY={new_hex},{old}\nwhile they restart, then OUTCROP_SEALING_KEY={new_hex}",
                    new.key_id()
                );
                println!("{new_hex}");
            }
        }
        Ok(())
    }

    fn settings(&self) -> outcrop_server::config::StoreConfig {
        outcrop_server::config::StoreConfig {
            url: self.database_url.clone(),
            ..Default::default()
        }
    }

    /// The service over this data directory, with no engines: what every command acts
    /// through, as the default account's root (access notifications go to its outbox).
    async fn service(&self) -> anyhow::Result<Service> {
        let mut service = Service::new(Arc::new(self.store().await?), catalog()?);
        service.outbox = Some(self.dir()?.join("outbox"));
        Ok(service)
    }
}

/// The default account's root: who the CLI acts as.
fn root() -> Principal {
    Principal {
        account_id: DEFAULT_ACCOUNT.to_owned(),
        arn: format!("arn:aws:iam::{DEFAULT_ACCOUNT}:root"),
        access_key_id: String::new(),
        region: "us-east-1".to_owned(),
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
            let service = data.service().await?;
            let arn = identities::create_user(&service, &root(), &name, !no_default_policy).await?;
            print_json(&json!({ "User": { "UserName": name, "Arn": arn, "CreateDate": now() } }))?;
        }
        UsersCommand::List(args) => {
            let service = args.data.service().await?;
            let users = identities::list_users(&service, &root()).await?;
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
            identities::delete_user(&data.service().await?, &root(), &name).await?;
            eprintln!("deleted user {name} with its access keys and policies");
        }
    }
    Ok(())
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::RotateSealing { data } => data.rotate_sealing().await?,
        KeysCommand::Create {
            user,
            bedrock_api_key: true,
            expires_in,
            data,
        } => {
            let service = data.service().await?;
            let key = api_keys::create(&service, &root(), &user, expires_in.map(i64::from))
                .await
                .with_context(|| format!("create the user with `outcrop users create {user}`"))?;
            let r = &key.record;
            print_json(&json!({ "ServiceSpecificCredential": {
                "UserName": user,
                "ServiceName": "bedrock.amazonaws.com",
                "ServiceSpecificCredentialId": r.credential_id,
                "ServiceCredentialAlias": r.alias,
                "ServiceCredentialSecret": key.key,
                "Status": "Active",
                "CreateDate": r.created_at,
                "ExpirationDate": r.expires_at,
            }}))?;
            eprintln!(
                "export AWS_BEARER_TOKEN_BEDROCK=... (the ServiceCredentialSecret above) to use it"
            );
        }
        KeysCommand::Create { user, data, .. } => {
            let service = data.service().await?;
            let key = identities::create_access_key(&service, &root(), &user)
                .await
                .with_context(|| format!("create the user with `outcrop users create {user}`"))?;
            print_json(&json!({ "AccessKey": {
                "UserName": user,
                "AccessKeyId": key.access_key_id,
                "Status": "Active",
                "SecretAccessKey": key.secret.expose(),
                "CreateDate": now(),
            }}))?;
        }
        KeysCommand::List(args) => {
            let service = args.data.service().await?;
            let keys = identities::list_access_keys(&service, &root()).await?;
            let api = api_keys::list(&service, &root(), None).await?;
            let mut rows: Vec<Vec<String>> = keys
                .into_iter()
                .map(|k| {
                    let note = if k.loopback_only {
                        "development key, loopback only"
                    } else {
                        ""
                    };
                    vec![
                        k.access_key_id,
                        k.principal_arn,
                        "Active".to_owned(),
                        k.created_at,
                        note.to_owned(),
                    ]
                })
                .collect();
            rows.extend(api.into_iter().map(|k| {
                let note = match &k.expires_at {
                    Some(t) => format!("Bedrock API key {}, expires {t}", k.alias),
                    None => format!("Bedrock API key {}", k.alias),
                };
                let status = if k.active { "Active" } else { "Inactive" };
                vec![
                    k.credential_id.clone(),
                    k.principal_arn(),
                    status.to_owned(),
                    k.created_at,
                    note,
                ]
            }));
            print_rows(
                args.format,
                "AccessKeyMetadata",
                &["AccessKeyId", "Principal", "Status", "CreateDate", "Note"],
                rows,
            )?;
        }
        KeysCommand::Update {
            credential_id,
            status,
            data,
        } => {
            let active = matches!(status, KeyStatus::Active);
            api_keys::set_active(&data.service().await?, &root(), &credential_id, active).await?;
            let status = if active { "Active" } else { "Inactive" };
            eprintln!("API key {credential_id} is {status}");
        }
        KeysCommand::Delete { id, data } if id.starts_with("ACCA") => {
            api_keys::delete(&data.service().await?, &root(), &id).await?;
            eprintln!("revoked API key {id}");
        }
        KeysCommand::Delete { id, data } => {
            identities::delete_access_key(&data.service().await?, &root(), &id).await?;
            eprintln!("deleted access key {id}");
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
            let text = read_document(&document)?;
            let service = data.service().await?;
            identities::put_user_policy(&service, &root(), &user, &name, &text).await?;
            eprintln!("policy {name} attached to {user}");
        }
        PoliciesCommand::List { user, list } => {
            let service = list.data.service().await?;
            let policies = identities::user_policies(&service, &root(), &user).await?;
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
    Ok(outcrop_models::Catalog::builtin_with(
        None,
        &Default::default(),
    )?)
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
            let service = args.data.service().await?;
            let access = AccountAccess::load(
                service.store.as_ref(),
                DEFAULT_ACCOUNT,
                AccessMode::Explicit,
            )
            .await?;
            let rows = catalog
                .entries()
                .iter()
                .map(|e| {
                    let status = match access.status(e) {
                        AccessStatus::Granted => "AUTHORIZED",
                        AccessStatus::UseCaseMissing => "AGREED (use case form missing)",
                        AccessStatus::Available => "NOT_AUTHORIZED",
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
            let service = data.service().await?;
            if access::needs_use_case(e) && access::use_case(&service, &root()).await.is_err() {
                bail!("{model} needs the use-case form first: outcrop access request {model} --use-case FORM.json");
            }
            grant(&service, e).await?;
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
            let service = data.service().await?;
            access::submit_use_case(&service, &root(), form.as_bytes()).await?;
            grant(&service, e).await?;
        }
        AccessCommand::Revoke { model, data } => {
            entry(&model)?;
            access::delete_agreement(&data.service().await?, &root(), &model)
                .await
                .with_context(|| format!("the account has no access to {model}"))?;
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

/// Records the agreement (and writes the approval notification to the outbox).
async fn grant(service: &Service, e: &outcrop_models::CatalogEntry) -> anyhow::Result<()> {
    access::agree(service, &root(), e).await?;
    eprintln!("access to {} granted", e.id);
    Ok(())
}
