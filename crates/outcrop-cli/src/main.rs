//! `outcrop`: the command line. Thin: it parses flags and calls the server and models crates.

mod identities;
mod usage;

use anyhow::Context;
use clap::{Parser, Subcommand};
use outcrop_server::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A self-hosted, Amazon Bedrock-compatible foundation-model service.
///
/// Point unmodified AWS clients at it: AWS_ENDPOINT_URL=http://127.0.0.1:4680
#[derive(Parser)]
#[command(name = "outcrop", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Bedrock API (pulls the default model on first start).
    Serve(ServeArgs),
    /// Manage local model files.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Manage IAM-style users of the default account.
    #[command(subcommand)]
    Users(identities::UsersCommand),
    /// Manage access keys (for SigV4) of users.
    #[command(subcommand)]
    Keys(identities::KeysCommand),
    /// Manage users' IAM-style policies.
    #[command(subcommand)]
    Policies(identities::PoliciesCommand),
    /// Manage the default account's model access (agreements, the Anthropic use-case form).
    #[command(subcommand)]
    Access(identities::AccessCommand),
    /// Report usage and cost from the ledger (per model, principal or day).
    Usage(usage::UsageArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:4680]
    #[arg(long, env = "OUTCROP_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (database, model cache) [default: the platform data dir]
    #[arg(long, env = "OUTCROP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file (see config/outcrop.example.toml)
    #[arg(long, env = "OUTCROP_CONFIG")]
    config: Option<PathBuf>,
    /// The database: `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`, shared by replicas
    /// [default: DATA_DIR/outcrop.db]
    #[arg(long, env = "OUTCROP_DATABASE_URL")]
    database_url: Option<String>,
    /// Model cache directory [default: DATA_DIR/models]
    #[arg(long, env = "OUTCROP_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Serve HTTPS: `self-signed` makes a development CA and certificate under DATA_DIR/tls
    /// (clients trust it with AWS_CA_BUNDLE=DATA_DIR/tls/ca.pem); `files` uses --tls-cert
    /// and --tls-key (or [tls] cert and key)
    #[arg(long, env = "OUTCROP_TLS", value_enum)]
    tls: Option<TlsMode>,
    /// PEM certificate chain for HTTPS (leaf first; reloaded on SIGHUP)
    #[arg(long, env = "OUTCROP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, env = "OUTCROP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS on this address and keep HTTP on --listen [default: HTTPS on --listen]
    #[arg(long, env = "OUTCROP_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// For test suites: a temporary data directory deleted on exit, every model enabled, a
    /// free loopback port, and one JSON line on stdout once serving:
    /// {"endpoint": "http://127.0.0.1:PORT", "data_dir": ..., "pid": ...}
    #[arg(long)]
    ephemeral: bool,
    /// Answer every text model from this rules file (the script engine; see docs/scripts.md)
    #[arg(long, env = "OUTCROP_SCRIPT")]
    script: Option<PathBuf>,
    /// The local model behind the chat and text ids [default: qwen2.5-coder-0.5b-instruct]
    #[arg(long, env = "OUTCROP_CHAT_MODEL")]
    chat_model: Option<String>,
    /// A preset: `tiny` serves every chat id with SmolLM2-135M (fast, for test suites; its
    /// answers are weak)
    #[arg(long, env = "OUTCROP_PROFILE", value_enum)]
    profile: Option<Profile>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Profile {
    /// SmolLM2-135M behind every chat id
    Tiny,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TlsMode {
    /// A development certificate from a CA kept under DATA_DIR/tls
    SelfSigned,
    /// The certificate and key files given
    Files,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download a model into the cache and verify its SHA-256.
    Pull {
        /// Model name [default: the default model]
        name: Option<String>,
        #[command(flatten)]
        dirs: DirArgs,
    },
    /// List the models in the cache and the models that can be pulled.
    List {
        /// List the Bedrock model catalog instead (ids, providers, formats, backing models)
        #[arg(long)]
        catalog: bool,
        /// Output format for --catalog
        #[arg(long, value_enum, default_value_t)]
        format: identities::Format,
        /// The model behind the chat ids, as `serve --chat-model` (for the BACKS column)
        #[arg(long, env = "OUTCROP_CHAT_MODEL")]
        chat_model: Option<String>,
        /// The running server asked for each model's load state (STATE column)
        #[arg(
            long,
            env = "OUTCROP_ENDPOINT",
            default_value = "http://127.0.0.1:4680"
        )]
        server: String,
        #[command(flatten)]
        dirs: DirArgs,
    },
}

#[derive(clap::Args)]
struct DirArgs {
    /// Data directory [default: the platform data dir]
    #[arg(long, env = "OUTCROP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Model cache directory [default: DATA_DIR/models]
    #[arg(long, env = "OUTCROP_MODELS_DIR")]
    models_dir: Option<PathBuf>,
}

impl DirArgs {
    fn models_dir(self) -> anyhow::Result<PathBuf> {
        let config = Config {
            data_dir: self.data_dir,
            models_dir: self.models_dir,
            ..Config::default()
        };
        Ok(config.models_dir()?)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTCROP_LOG").unwrap_or_else(|_| {
                "info,llama_cpp_2=warn,llama-cpp-2=warn,tower_http=warn".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Users(command) => runtime()?.block_on(identities::users(command)),
        Command::Keys(command) => runtime()?.block_on(identities::keys(command)),
        Command::Policies(command) => runtime()?.block_on(identities::policies(command)),
        Command::Access(command) => runtime()?.block_on(identities::access(command)),
        Command::Usage(args) => runtime()?.block_on(usage::usage(args)),
        Command::Models(ModelsCommand::Pull { name, dirs }) => {
            let name = name.unwrap_or_else(|| outcrop_models::DEFAULT_MODEL.to_owned());
            let source = outcrop_models::source(&name).with_context(|| {
                let known: Vec<&str> = outcrop_models::SOURCES.iter().map(|s| s.name).collect();
                format!("unknown model {name}; known: {}", known.join(", "))
            })?;
            let path = outcrop_models::pull(source, &dirs.models_dir()?, true)?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Models(ModelsCommand::List {
            catalog: true,
            format,
            ..
        }) => identities::print_catalog(format),
        Command::Models(ModelsCommand::List {
            dirs,
            chat_model,
            server,
            ..
        }) => {
            let states = runtime()?.block_on(load_states(&server));
            list_models(
                &dirs.models_dir()?,
                chat_model.as_deref(),
                (&server, states),
            )
        }
    }
}

/// Each backing model's load state (`unloaded`, `loading`, `ready`, `failed`) as the server
/// at `url` reports it on `/_outcrop/health`; `None` when no server answers.
async fn load_states(url: &str) -> Option<std::collections::HashMap<String, String>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    let health: serde_json::Value = client
        .get(format!("{}/_outcrop/health", url.trim_end_matches('/')))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        health["models"]
            .as_array()?
            .iter()
            .filter_map(|m| {
                Some((
                    m["name"].as_str()?.to_owned(),
                    m["state"].as_str()?.to_owned(),
                ))
            })
            .collect(),
    )
}

/// `outcrop models list`: the cached models with what their metadata says, the catalog ids
/// each backs and its load state on the running server, then the models that can be pulled.
fn list_models(
    dir: &std::path::Path,
    chat_model: Option<&str>,
    (server, states): (&str, Option<std::collections::HashMap<String, String>>),
) -> anyhow::Result<()> {
    let catalog = outcrop_models::Catalog::builtin_with(chat_model, &Default::default())?;
    let cached = outcrop_models::cached_models(dir)?;
    println!("cached in {}:", dir.display());
    if cached.is_empty() {
        println!("  (none)");
    } else {
        println!(
            "  {:<28} {:>9}  {:<8} {:<7} {:>7}  {:<9} BACKS",
            "NAME", "SIZE", "ARCH", "QUANT", "CONTEXT", "STATE"
        );
    }
    // Not served by the running server (or none answered): `-`.
    let state = |name: &str| {
        states
            .as_ref()
            .and_then(|s| s.get(name))
            .map_or("-", String::as_str)
    };
    for m in &cached {
        let d = std::fs::File::open(&m.path)
            .ok()
            .and_then(|f| outcrop_models::describe(std::io::BufReader::new(f)).ok())
            .unwrap_or_default();
        let ids: Vec<&str> = catalog
            .entries()
            .iter()
            .filter(|e| e.backing_model == m.name)
            .map(|e| e.id.as_str())
            .collect();
        let backs = match ids.as_slice() {
            [] => "-".to_owned(),
            [one] => (*one).to_owned(),
            [first, rest @ ..] => format!("{} ids ({first}, ...)", rest.len() + 1),
        };
        println!(
            "  {:<28} {:>6.1} MB  {:<8} {:<7} {:>7}  {:<9} {backs}",
            m.name,
            m.size as f64 / 1e6,
            or_dash(&d.architecture),
            or_dash(&d.quantization),
            d.context.map_or("-".to_owned(), |c| c.to_string()),
            state(&m.name),
        );
    }
    if states.is_none() && !cached.is_empty() {
        println!("  (no server answered at {server}: STATE not shown; pass --server URL)");
    }
    println!("available to pull:");
    for s in outcrop_models::SOURCES {
        println!("  {:<28} {}", s.name, s.description);
    }
    Ok(())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.data_dir.is_some() {
        config.data_dir = args.data_dir;
    }
    if args.models_dir.is_some() {
        config.models_dir = args.models_dir;
    }
    if args.database_url.is_some() {
        config.store.url = args.database_url;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        (config.tls.cert, config.tls.key) = (Some(cert), Some(key));
    }
    match args.tls {
        Some(TlsMode::SelfSigned) => {
            config.tls.self_signed = true;
            (config.tls.cert, config.tls.key) = (None, None);
        }
        Some(TlsMode::Files) if config.tls.cert.is_none() => {
            anyhow::bail!("--tls files needs --tls-cert and --tls-key (or [tls] cert and key)")
        }
        Some(TlsMode::Files) => config.tls.self_signed = false,
        None => {}
    }
    if args.tls_listen.is_some() {
        config.tls.listen = args.tls_listen;
    }
    if args.script.is_some() {
        config.engine.script = args.script;
    }
    match (args.chat_model, args.profile) {
        (Some(name), _) => config.chat_model = Some(name),
        (None, Some(Profile::Tiny)) => {
            config.chat_model = Some(outcrop_models::TINY_MODEL.to_owned())
        }
        (None, None) => {}
    }
    // Kept alive until the server stops, then deleted.
    let mut _ephemeral = None;
    if args.ephemeral {
        let dir = tempfile::Builder::new()
            .prefix("outcrop-ephemeral-")
            .tempdir()?;
        // Models stay in the shared cache, not in the throw-away directory.
        if config.models_dir.is_none() {
            config.models_dir = Some(Config::default().models_dir()?);
        }
        config.data_dir = Some(dir.path().to_owned());
        config.access.mode = outcrop_service::AccessMode::Open;
        if args.listen.is_none() {
            config.listen = "127.0.0.1:0".parse()?;
        }
        config.announce = true;
        _ephemeral = Some(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(outcrop_server::serve(
        config,
        outcrop_server::shutdown_signal(),
    ))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
