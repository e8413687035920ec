//! The server configuration: built-in defaults, then the TOML file, then flags and
//! environment variables (applied by the CLI).

use outcrop_api::PromptMode;
use outcrop_models::CatalogOverride;
use outcrop_service::AccessMode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The loopback address and port served when nothing else is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4680";

/// `outcrop serve` settings. Every field is optional in the file; see `config/outcrop.example.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the database (and, by default, models) live. Default: the platform data dir.
    pub data_dir: Option<PathBuf>,
    /// Where pulled model files are cached. Default: `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// Pull the default model on start when it is missing.
    pub pull_missing_models: bool,
    /// The local model behind every chat and text id of the built-in catalog (default:
    /// `qwen2.5-coder-0.5b-instruct`; `smollm2-135m-instruct` is the small, fast one).
    /// `[catalog."ID"] backing_model` still wins for one id.
    pub chat_model: Option<String>,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish before running
    /// generations are ended.
    pub shutdown_grace_secs: u64,
    /// After SIGINT/SIGTERM the process exits within this many seconds whatever its clients
    /// do (a connection that neither finishes a request nor reads its answer is dropped).
    pub shutdown_deadline_secs: u64,
    pub tls: TlsConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub access: AccessConfig,
    pub validation: ValidationConfig,
    pub limits: LimitsConfig,
    pub engine: EngineSettings,
    /// Local models by name: where the GGUF file is (default: `<models_dir>/<name>.gguf`).
    pub backing_models: BTreeMap<String, BackingModel>,
    /// Per-model-id changes to the built-in Bedrock catalog, or new ids.
    pub catalog: BTreeMap<String, CatalogOverride>,
    /// Per-model quotas (requests and tokens per minute, tokens per day) replacing the
    /// built-in Bedrock defaults.
    pub quotas: BTreeMap<String, outcrop_service::Limits>,
    /// Where invocation logs with an S3 destination are delivered.
    pub invocation_logging: crate::logs::InvocationLoggingConfig,
    /// The S3-compatible endpoint CreateModelImportJob reads `s3://` sources from (the same
    /// fields as `[invocation_logging]`, whose endpoint is used when this has none).
    pub model_import: crate::logs::InvocationLoggingConfig,
    /// Send access notifications over SMTP too (they always go to `<data_dir>/outbox`).
    pub smtp: Option<SmtpConfig>,
    /// Print one JSON line on stdout once the server serves (`outcrop serve --ephemeral`).
    #[serde(skip)]
    pub announce: bool,
}

/// `[store]`: where durable state lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB` (also `OUTCROP_DATABASE_URL` and
    /// `--database-url`). Default: `sqlite://<data_dir>/outcrop.db`.
    pub url: Option<String>,
    /// The key that seals secret access keys in a Postgres store, 32 bytes (default:
    /// `<data_dir>/secret.key`, made when missing). `OUTCROP_SEALING_KEY` (64 hex digits)
    /// wins. Every replica on one database needs the same key; another key is refused at
    /// start.
    pub sealing_key_file: Option<PathBuf>,
    /// Create the development key pair `test`/`test` in a Postgres store (never by default:
    /// such a store is shared).
    pub seed_dev_key: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Mail server host name or address.
    pub host: String,
    #[serde(default = "smtp_port")]
    pub port: u16,
    /// Sender address (envelope and header), e.g. `no-reply@outcrop.localhost`.
    #[serde(default = "smtp_from")]
    pub from: String,
    /// Who receives the notifications (the account owner).
    pub to: String,
    /// Optional SMTP AUTH credentials. The connection is plain SMTP: point it at a local
    /// relay (which may forward with TLS), not straight at a public server.
    pub username: Option<String>,
    pub password: Option<String>,
}

fn smtp_port() -> u16 {
    25
}

fn smtp_from() -> String {
    "no-reply@outcrop.localhost".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first (with `key`). Reloaded on SIGHUP.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`. Reloaded on SIGHUP.
    pub key: Option<PathBuf>,
    /// Make a development CA (once) and a server certificate under `<data_dir>/tls/`;
    /// clients trust it with `AWS_CA_BUNDLE=<data_dir>/tls/ca.pem`.
    pub self_signed: bool,
    /// Where HTTPS is served. Unset: on `listen`, in place of HTTP. Set: HTTPS here and
    /// HTTP on `listen` too.
    pub listen: Option<SocketAddr>,
}

impl TlsConfig {
    /// The certificate source, if TLS is configured at all.
    pub fn source(&self) -> Result<Option<crate::tls::Source>, String> {
        use crate::tls::Source;
        match (&self.cert, &self.key, self.self_signed) {
            (None, None, false) => Ok(None),
            (None, None, true) => Ok(Some(Source::SelfSigned)),
            (Some(cert), Some(key), false) => Ok(Some(Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (Some(_), Some(_), true) => {
                Err("[tls] takes either cert and key, or self_signed = true, not both".into())
            }
            _ => Err("[tls] cert and key go together: set both".into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Keep the development key pair (`test`/`test`, the account root, no policy applies).
    /// `false` deletes it from the store on start.
    pub dev_key: bool,
    /// Accept the development key from any client, not only from a loopback client on a
    /// loopback listener (for a server in a container reached through a published port).
    pub allow_dev_key_on_any_address: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            dev_key: true,
            allow_dev_key_on_any_address: false,
        }
    }
}

/// `[limits]`: what one client can hold of the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections at once, all listeners together; a connection beyond it is closed
    /// as soon as it is accepted.
    pub max_connections: usize,
    /// A client must send a request's headers within this many seconds of the connection
    /// opening, or of the previous response (a half-sent request is closed then).
    pub header_read_timeout_secs: u64,
    /// Runtime calls one principal may have running at once (streams until they end);
    /// beyond it, ThrottlingException. 0: no cap.
    pub max_concurrent_requests_per_principal: usize,
    /// Seconds a runtime call may take to be answered (a stream: to open); beyond it,
    /// ModelTimeoutException and the generation is cancelled. 0: no limit.
    pub request_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 4096,
            header_read_timeout_secs: 30,
            max_concurrent_requests_per_principal: 128,
            request_timeout_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `explicit` (as Bedrock: enable each model first) or `open` (every model enabled).
    pub mode: AccessMode,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// `lenient` (the seed article's Bedrock behaviour) or `strict` (Anthropic's documented rules).
    pub claude_prompt: PromptMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Context window of each sequence, in tokens (default: the model's training context).
    pub context_tokens: Option<u32>,
    /// Sequences generated together per model (continuous batching).
    pub parallel: u32,
    /// KV cache cells shared by those sequences (default: one context's worth). Requests wait
    /// until the cells they may need (prompt + max tokens) are free.
    pub kv_tokens: Option<u32>,
    /// `true`: one KV pool shared by all sequences (memory follows `kv_tokens`). `false`: a
    /// separate pool of `context_tokens` per sequence (memory = parallel x context_tokens).
    pub kv_unified: bool,
    /// CPU threads per engine (default: all cores).
    pub threads: Option<u32>,
    /// Token budget of one decode step: one token per generating sequence, the rest for
    /// prompt chunks (long prompts are split so running streams keep flowing).
    pub batch_tokens: u32,
    /// Sequences whose prompt is processed in one step: 1 finishes prompts that arrive
    /// together one after another, each starting to stream as soon as its own prompt is done
    /// (the lowest median time to first token on a CPU); raise it on a GPU, or for throughput
    /// and tail latency near `parallel` streams (docs/benchmarks.md).
    pub prompts_per_step: usize,
    /// Requests that may wait for a free sequence per model; beyond it clients get
    /// ThrottlingException at once. `flex` requests are refused once half of it is taken,
    /// `priority` ones may exceed it by a quarter; waiting requests are admitted by tier.
    pub queue_len: usize,
    /// Prompt prefixes kept in the KV pool for later prompts that start the same way
    /// (automatic prefix reuse, and the checkpoints of Bedrock's prompt caching); 0 turns it
    /// off. Needs `kv_unified`. Kept cells are evicted, least recently used first, whenever
    /// running requests need them.
    pub prefix_cache: usize,
    /// Shared prefixes shorter than this many tokens are computed again rather than reused.
    pub prefix_min_tokens: u32,
    /// Which prompts reuse stored prefixes: `checkpoints`, those whose request asked for
    /// prompt caching (`cachePoint`, `cache_control`); `always`, every prompt (llama-server's
    /// `cache_prompt`). llama.cpp's CPU kernels compute a row slightly differently in
    /// different batch shapes, so a resumed prompt can end in another answer at temperature 0
    /// than one computed whole; `checkpoints` keeps uncached calls exactly repeatable.
    pub prefix_reuse: PrefixReuse,
    /// Layers to offload to a GPU (builds with the `cuda` feature only).
    pub gpu_layers: u32,
    /// Run every generation deterministically: alone, on a cleared KV cache, unseeded
    /// samplers seeded with 0 (one request asks with `X-Outcrop-Deterministic: true`).
    /// Concurrent requests then wait for each other (docs/benchmarks.md has the cost).
    pub deterministic: bool,
    /// Answer every text model from this rules file (the script engine: no model is loaded
    /// for text; `[backing_models.X]` settings of a model win).
    pub script: Option<PathBuf>,
    /// On a CPU (`gpu_layers = 0`), load a model stored as Q4_1 re-encoded as Q8_0 (made once,
    /// kept in the model cache's `derived/`): ggml has no batched CPU kernel for Q4_1, so
    /// this serves several streams and long prompts much faster, for 1.7x the weights'
    /// memory and answers within Q8_0 rounding of the stored model (docs/benchmarks.md).
    pub expand_q4_1: bool,
    /// Load each local text model on its first request (the server listens at once) instead
    /// of all of them before listening.
    pub lazy_load: bool,
    /// How long a request waits for its model to load before ModelNotReadyException.
    pub load_wait_secs: u64,
    /// Memory the local text models may hold together (weights plus KV cache, estimated from
    /// each GGUF), e.g. "6GiB": idle models are unloaded, least recently used first, to load
    /// another; a model that cannot fit alone is refused at start. Default: no limit.
    pub memory_budget: Option<String>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            context_tokens: None,
            parallel: 8,
            kv_tokens: None,
            kv_unified: true,
            threads: None,
            batch_tokens: 512,
            prompts_per_step: 1,
            queue_len: 64,
            prefix_cache: 32,
            prefix_min_tokens: 32,
            prefix_reuse: PrefixReuse::Checkpoints,
            gpu_layers: 0,
            script: None,
            deterministic: false,
            expand_q4_1: true,
            lazy_load: true,
            load_wait_secs: 60,
            memory_budget: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackingModel {
    /// The GGUF file (or embedding-model directory) of a local model.
    pub path: Option<PathBuf>,
    /// `local` (a model file, the default) or `script` (answers by rule from `script`).
    #[serde(default)]
    pub engine: EngineKind,
    /// For `engine = "script"`: the TOML rules file (read again when it changes).
    pub script: Option<PathBuf>,
    /// For `engine = "script"`: the backing model that answers what no rule matches (and
    /// counts tokens); none: such requests fail with an error naming them.
    pub fallback: Option<String>,
    /// For `engine = "openai"`: the server's base URL (ending in `/v1`), or several in `urls`
    /// (tried in turn, the next when one cannot be reached). For `engine = "bedrock"`: the
    /// runtime endpoint (`https://bedrock-runtime.us-east-1.amazonaws.com`, or an Outcrop's
    /// URL); for `engine = "replay"`, where misses go when `on_miss = "upstream"`.
    pub url: Option<String>,
    #[serde(default)]
    pub urls: Vec<String>,
    /// For `engine = "openai"`: the model name the server serves. For `engine = "bedrock"`:
    /// the model id sent upstream (default: the one the client named).
    pub model: Option<String>,
    /// For `engine = "openai"`: the environment variable holding the server's API key. For
    /// `engine = "bedrock"`: one holding a Bedrock API key, sent in place of a signature.
    pub api_key_env: Option<String>,
    /// For `engine = "bedrock"`: the environment variables holding the credentials calls are
    /// signed with (default `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`).
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub session_token_env: Option<String>,
    /// For `engine = "bedrock"`: the region signed for (default: the one in `url`, else
    /// `us-east-1`).
    pub region: Option<String>,
    /// For `engine = "bedrock"`: a directory where every finished exchange is written as a
    /// cassette file.
    pub record: Option<PathBuf>,
    /// For `engine = "replay"`: the directory of cassettes answered from.
    pub cassettes: Option<PathBuf>,
    /// For `engine = "replay"`: `fast` (every event at once, the default) or `recorded` (each
    /// at its recorded time).
    #[serde(default)]
    pub pace: ReplayPace,
    /// For `engine = "replay"`: what a request with no cassette gets: `error` (a
    /// ValidationException naming it, the default) or `upstream` (sent to `url` and recorded
    /// into `cassettes`).
    #[serde(default)]
    pub on_miss: OnMiss,
    /// For `engine = "openai"` and `"bedrock"`: seconds for a whole answer (default 600).
    pub timeout_secs: Option<u64>,
    /// For `engine = "openai"`: generations sent at once to each endpoint (default 64);
    /// beyond it on every endpoint, requests are throttled.
    pub max_in_flight: Option<usize>,
    /// For `engine = "openai"`: consecutive failures that eject an endpoint until its health
    /// check passes (default 3; 0: never).
    pub eject_after: Option<u32>,
    /// For `engine = "openai"`: seconds between checks of each endpoint's `GET /models`
    /// (default 5; 0: no checks).
    pub health_interval_secs: Option<f64>,
    /// For `engine = "openai"`: prompts that start alike (system and first user turn) go to
    /// the same endpoint, whose KV cache may hold them, unless it is much busier.
    #[serde(default)]
    pub prefix_affinity: bool,
    /// For `engine = "openai"`: tools the model may choose to call go to the server as
    /// OpenAI `tools` (its own tool-call parsing; llama-server constrains calls with a
    /// grammar; vLLM needs `--enable-auto-tool-choice` and a `--tool-call-parser`), instead
    /// of instructions in the system turn.
    #[serde(default)]
    pub native_tools: bool,
    /// For `engine = "openai"`: the served model's context window (default 32768).
    pub context_tokens: Option<u32>,
    /// For a local model: engine settings of its own, in place of `[engine]`'s.
    #[serde(default)]
    pub settings: ModelSettings,
}

/// `[backing_models.X.settings]`: the `[engine]` settings one local model may have of its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub context_tokens: Option<u32>,
    pub parallel: Option<u32>,
    pub kv_tokens: Option<u32>,
    pub kv_unified: Option<bool>,
    pub threads: Option<u32>,
    pub batch_tokens: Option<u32>,
    pub prompts_per_step: Option<usize>,
    pub queue_len: Option<usize>,
}

/// Reads a size such as `6GiB`, `512MiB`, `2GB` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like \"6GiB\" or \"512MiB\""))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use KiB, MiB or GiB)"
            ))
        }
    };
    Ok((number * factor as f64) as u64)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixReuse {
    #[default]
    Checkpoints,
    Always,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPace {
    #[default]
    Fast,
    Recorded,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMiss {
    #[default]
    Error,
    Upstream,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Local,
    Script,
    /// An OpenAI-compatible server (vLLM, llama-server, SGLang, TGI, Ollama, an Outcrop).
    OpenAi,
    /// A Bedrock runtime endpoint (AWS, or another Outcrop), calls forwarded as they came.
    Bedrock,
    /// Answers recorded from a Bedrock endpoint (`cassettes`).
    Replay,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: None,
            models_dir: None,
            pull_missing_models: true,
            chat_model: None,
            shutdown_grace_secs: 30,
            shutdown_deadline_secs: 45,
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            access: AccessConfig::default(),
            validation: ValidationConfig::default(),
            limits: LimitsConfig::default(),
            engine: EngineSettings::default(),
            backing_models: BTreeMap::new(),
            catalog: BTreeMap::new(),
            smtp: None,
            quotas: BTreeMap::new(),
            invocation_logging: Default::default(),
            model_import: Default::default(),
            store: Default::default(),
            announce: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no data directory: set --data-dir or OUTCROP_DATA_DIR")]
    NoDataDir,
}

impl Config {
    /// Reads a TOML config file over the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            source: e,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The data directory: configured, or the platform's (e.g. `~/.local/share/outcrop`).
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        directories::ProjectDirs::from("", "", "outcrop")
            .map(|p| p.data_dir().to_owned())
            .ok_or(ConfigError::NoDataDir)
    }

    pub fn models_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.models_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(self.data_dir()?.join("models")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_smtp_parse() {
        let c = Config::parse(
            "[quotas.\"anthropic.claude-v2\"]\nrequests_per_minute = 5\ntokens_per_minute = 200000\n\n[smtp]\nhost = \"127.0.0.1\"\nto = \"o@example.com\"\n",
        )
        .unwrap();
        let q = c.quotas["anthropic.claude-v2"];
        assert_eq!(
            (q.requests_per_minute, q.tokens_per_minute, q.tokens_per_day),
            (Some(5), Some(200000), None)
        );
        let smtp = c.smtp.unwrap();
        assert_eq!(
            (smtp.port, smtp.from.as_str()),
            (25, "no-reply@outcrop.localhost")
        );
        assert!(
            Config::parse("[quotas.\"m\"]\nrpm = 5\n").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let example = Config::parse(include_str!("../../../config/outcrop.example.toml")).unwrap();
        let default = Config::default();
        assert_eq!(example.listen, default.listen);
        assert_eq!(example.engine.batch_tokens, default.engine.batch_tokens);
        assert_eq!(example.engine.queue_len, default.engine.queue_len);
        assert_eq!(example.engine.prefix_reuse, default.engine.prefix_reuse);
        assert_eq!(
            example.engine.prompts_per_step,
            default.engine.prompts_per_step
        );
        assert_eq!(example.engine.expand_q4_1, default.engine.expand_q4_1);
        assert_eq!(example.engine.prefix_cache, default.engine.prefix_cache);
        assert_eq!(
            example.engine.prefix_min_tokens,
            default.engine.prefix_min_tokens
        );
        assert_eq!(example.validation.claude_prompt, PromptMode::Lenient);
        assert!(example.catalog.contains_key("anthropic.claude-v2"));
    }

    #[test]
    fn tls_settings() {
        use crate::tls::Source;
        let c =
            Config::parse("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nlisten = \"0.0.0.0:4443\"")
                .unwrap();
        assert_eq!(
            c.tls.source().unwrap(),
            Some(Source::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(Config::default().tls.source().unwrap(), None);
        let c = Config::parse("[tls]\nself_signed = true").unwrap();
        assert_eq!(c.tls.source().unwrap(), Some(Source::SelfSigned));
        let c = Config::parse("[tls]\ncert = \"c.pem\"").unwrap();
        assert!(c.tls.source().unwrap_err().contains("set both"));
        let c =
            Config::parse("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nself_signed = true").unwrap();
        assert!(c.tls.source().unwrap_err().contains("not both"));
        assert!(Config::default().auth.dev_key);
        assert!(
            !Config::parse("[auth]\ndev_key = false")
                .unwrap()
                .auth
                .dev_key
        );
    }

    #[test]
    fn sizes_and_model_settings() {
        assert_eq!(parse_size("6GiB"), Ok(6 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("3 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        let c = Config::parse(
            "[engine]\nmemory_budget = \"2GiB\"\n[backing_models.big]\npath = \"/m.gguf\"\n[backing_models.big.settings]\nthreads = 1\nparallel = 2",
        )
        .unwrap();
        assert_eq!(c.backing_models["big"].settings.threads, Some(1));
        assert_eq!(c.backing_models["big"].settings.parallel, Some(2));
        assert!(Config::parse("[backing_models.x.settings]\nthread = 1").is_err());
    }

    #[test]
    fn script_backing_models() {
        let c = Config::parse(
            "[backing_models.smollm2-135m-instruct]\nengine = \"script\"\nscript = \"rules.toml\"\nfallback = \"real\"",
        )
        .unwrap();
        let m = &c.backing_models["smollm2-135m-instruct"];
        assert_eq!(m.engine, EngineKind::Script);
        assert_eq!(m.fallback.as_deref(), Some("real"));
        assert!(Config::parse("[backing_models.x]\nengine = \"remote\"").is_err());
        let c = Config::parse(
            "[backing_models.gpu]\nengine = \"openai\"\nurls = [\"http://a:8000/v1\", \"http://b:8000/v1\"]\nmodel = \"Qwen/Qwen3-8B\"\napi_key_env = \"VLLM_KEY\"",
        )
        .unwrap();
        assert_eq!(c.backing_models["gpu"].engine, EngineKind::OpenAi);
        assert_eq!(c.backing_models["gpu"].urls.len(), 2);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::parse("listn = \"127.0.0.1:1\"")
            .unwrap_err()
            .contains("unknown field"));
        assert!(Config::parse("[engine]\nthreds = 2").is_err());
    }

    #[test]
    fn strict_mode_and_models() {
        let c = Config::parse(
            "[validation]\nclaude_prompt = \"strict\"\n[backing_models.mine]\npath = \"/m.gguf\"\n[catalog.\"anthropic.claude-v2\"]\nbacking_model = \"mine\"",
        )
        .unwrap();
        assert_eq!(c.validation.claude_prompt, PromptMode::Strict);
        assert_eq!(
            c.backing_models["mine"].path.as_deref(),
            Some(Path::new("/m.gguf"))
        );
    }
}
